"""flags api: GET /api/v1/config (remote config for the calling client)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flags import queries
from flags.rules import MAX_VERSION_LENGTH, PLATFORMS, parse_version


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored; * matches."""
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or etag in (c.removeprefix("W/") for c in candidates)


class ConfigView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("platform", str, enum=list(PLATFORMS), required=False),
            OpenApiParameter("app_version", str, required=False, description="e.g. 1.10.0"),
        ],
        responses={200: OpenApiTypes.OBJECT, 304: None},
        description="Every flag evaluated for the caller (platform, app version, user percentage), "
        "with an ETag; If-None-Match answers 304.",
    )
    def get(self, request: Request) -> Response:
        platform = request.query_params.get("platform") or None
        app_version = request.query_params.get("app_version") or None
        errors = {}
        if platform is not None and platform not in PLATFORMS:
            errors["platform"] = [f"Must be one of {', '.join(PLATFORMS)}."]
        if app_version is not None and parse_version(app_version) is None:
            errors["app_version"] = [f"Must be a version such as 1.10.0 (at most {MAX_VERSION_LENGTH} characters)."]
        if errors:
            raise ValidationError(errors)

        config = queries.evaluated_config(request.user, platform, app_version)
        etag = queries.config_etag(config)
        # Per-user answer: shared caches must not keep it; clients revalidate with the ETag.
        headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
        if _etag_matches(request.headers.get("If-None-Match", ""), etag):
            return Response(status=304, headers=headers)
        return Response(config, headers=headers)
