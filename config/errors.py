"""One error shape for the whole API: ``{"error": {"code", "message", "fields"}}``.

DRF exceptions go through :func:`api_exception_handler`; anything that escapes DRF on an
``/api/`` path (unknown URL, oversized body read by Django, an unexpected exception) is turned
into the same shape by :class:`ApiErrorMiddleware`, so no input yields an HTML page or a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

log = logging.getLogger("pushwatch.api")


class ApiError(exceptions.APIException):
    """An API error with an explicit status and machine-readable code."""

    def __init__(self, status_code: int, code: str, message: str, fields: dict | None = None):
        self.status_code = status_code
        self.code = code
        self.message = message
        self.fields = fields or {}
        super().__init__(detail=message, code=code)


class Conflict(ApiError):
    def __init__(self, message: str, code: str = "conflict", fields: dict | None = None):
        super().__init__(status.HTTP_409_CONFLICT, code, message, fields)


def error_body(code: str, message: str, fields: dict | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten_fields(detail: Any) -> dict[str, Any]:
    """Turn DRF's nested ValidationError detail into {field: [messages]} (lists keep their index)."""
    if isinstance(detail, dict):
        return {str(k): _plain(v) for k, v in detail.items()}
    return {"non_field_errors": _plain(detail)}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value)


_CODE_BY_CLASS = {
    exceptions.ParseError: ("malformed_json", "The request body is not valid JSON."),
    exceptions.NotAuthenticated: ("not_authenticated", "Authentication credentials were not provided."),
    exceptions.AuthenticationFailed: ("authentication_failed", "Invalid token."),
    exceptions.PermissionDenied: ("permission_denied", "You do not have permission to perform this action."),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.NotAcceptable: ("not_acceptable", None),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", None),
    exceptions.Throttled: ("throttled", None),
}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is larger than this endpoint accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, ApiError):
        response = Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        body = error_body("invalid", "The request has invalid fields.", fields)
    else:
        code, message = None, None
        for cls, (c, m) in _CODE_BY_CLASS.items():
            if isinstance(exc, cls):
                code, message = c, m
                break
        if isinstance(exc, Http404):
            code, message = "not_found", "Not found."
        if code is None:
            code = getattr(exc, "default_code", "error")
        if message is None or isinstance(exc, (exceptions.MethodNotAllowed, exceptions.Throttled)):
            detail = getattr(exc, "detail", None)
            message = str(detail) if detail else str(exc)
        if isinstance(exc, exceptions.ParseError) and exc.detail and "JSON" not in str(exc.detail):
            code, message = "parse_error", str(exc.detail)
        body = error_body(code, message)
    response.data = body
    return response


class ApiErrorMiddleware:
    """Gives non-DRF failures on /api/ paths the same JSON error shape."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code in (404, 405, 413)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            codes = {404: ("not_found", "Not found."), 405: ("method_not_allowed", "Method not allowed."),
                     413: ("payload_too_large", "The request body is too large.")}  # fmt: skip
            code, message = codes[response.status_code]
            return JsonResponse(error_body(code, message), status=response.status_code)
        return response

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        if isinstance(exc, RequestDataTooBig):
            return JsonResponse(error_body("payload_too_large", "The request body is too large."), status=413)
        if isinstance(exc, Http404):
            return JsonResponse(error_body("not_found", "Not found."), status=404)
        if isinstance(exc, PermissionDenied):
            return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return JsonResponse(error_body("internal_error", "The server could not handle this request."), status=500)
