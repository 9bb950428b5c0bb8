"""Telemetry API: ``POST /api/v1/telemetry/batch`` (thin: limits, JSON, then the service)."""

from __future__ import annotations

import hashlib
import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.errors import ApiError
from telemetry import services


class TelemetryBatchView(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "telemetry"  # rate: settings THROTTLE_TELEMETRY_RATE, counted in the Redis cache

    @extend_schema(
        summary="Flush buffered client telemetry (<= 500 entries, <= 1 MB)",
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", str, OpenApiParameter.HEADER, description="a retry stores nothing twice"
            ),
            OpenApiParameter("X-Device-Id", str, OpenApiParameter.HEADER, description="the sending device (platform)"),
        ],
        responses={
            202: inline_serializer(
                "TelemetryBatchAccepted", {"batch_id": serializers.UUIDField(), "accepted": serializers.IntegerField()}
            )
        },
    )
    def post(self, request: Request) -> Response:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > services.MAX_BODY_BYTES:  # refuse before reading it
            raise services.BatchTooLarge(f"A batch body may be at most {services.MAX_BODY_BYTES} bytes.")
        raw = request.body  # parsed here, not by DRF: the service validates the entries itself
        if len(raw) > services.MAX_BODY_BYTES:
            raise services.BatchTooLarge(f"A batch body may be at most {services.MAX_BODY_BYTES} bytes.")
        try:
            entries = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, "malformed_json", "The request body is not valid JSON.") from exc
        key = request.headers.get("Idempotency-Key")
        result = services.ingest_batch(
            request.user,
            entries,
            device_id=request.headers.get("X-Device-Id"),
            idempotency_key=key,
            request_sha256=hashlib.sha256(raw).hexdigest() if key else None,
        )
        headers = {"Idempotent-Replayed": "true"} if result.replayed else None
        return Response({"batch_id": str(result.batch_id), "accepted": result.accepted}, status=202, headers=headers)
