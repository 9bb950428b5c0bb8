"""Devices and push receipts (DESIGN.md API table). Thin: validate, call services/queries, render.

Responses show a device token truncated only (``pushes.models.truncate_token``).
"""

from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApiError
from config.validators import storable_unicode
from pushes import queries, services
from pushes.models import Platform, UserDevice

MAX_TOKEN_LENGTH = 4096
MAX_RECEIPT_DETAILS_BYTES = 2048


class RegisterDeviceSerializer(serializers.Serializer):
    platform = serializers.ChoiceField(choices=Platform.choices)
    token = serializers.CharField(max_length=MAX_TOKEN_LENGTH, allow_blank=False, validators=[storable_unicode])
    app_version = serializers.CharField(max_length=40, allow_blank=True, validators=[storable_unicode])


class PushReceiptSerializer(serializers.Serializer):
    device_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=[s.value for s in services.RECEIPT_STATUSES])
    details = serializers.DictField(required=False, default=dict)

    def validate_details(self, value: dict) -> dict:
        # JSONB refuses NUL and lone surrogates; the size cap keeps the append-only log small.
        text = json.dumps(value, ensure_ascii=False)
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise serializers.ValidationError("Contains characters that are not valid Unicode.") from exc
        if "\\u0000" in json.dumps(value):
            raise serializers.ValidationError("May not contain NUL characters.")
        if size > MAX_RECEIPT_DETAILS_BYTES:
            raise serializers.ValidationError(f"At most {MAX_RECEIPT_DETAILS_BYTES} bytes of JSON.")
        return value


def device_json(device: UserDevice) -> dict:
    return {
        "id": str(device.id),
        "platform": device.platform,
        "token": device.token_prefix,  # never the full token
        "app_version": device.app_version,
        "active": device.active,
        "last_seen_at": device.last_seen_at.isoformat() if device.last_seen_at else None,
        "created_at": device.created_at.isoformat() if device.created_at else None,
    }


class DeviceRegisterView(APIView):
    @extend_schema(request=RegisterDeviceSerializer, responses={201: dict, 200: dict})
    def post(self, request: Request) -> Response:
        s = RegisterDeviceSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        device, created = services.register_device(request.user, **s.validated_data)
        return Response(device_json(device), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class DeviceLogoutView(APIView):
    @extend_schema(
        request=None, responses=inline_serializer("LogoutResult", {"deactivated": serializers.IntegerField()})
    )
    def post(self, request: Request) -> Response:
        return Response({"deactivated": services.logout_devices(request.user)})


class PushReceiptView(APIView):
    @extend_schema(request=PushReceiptSerializer, responses={201: dict})
    def post(self, request: Request, push_id) -> Response:
        # Another user's push (or none) is a 404: existence is not revealed.
        push = queries.push_for_recipient(push_id, request.user)
        if push is None:
            raise ApiError(status.HTTP_404_NOT_FOUND, "not_found", "Not found.")
        s = PushReceiptSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        device = queries.device_of_user(s.validated_data["device_id"], request.user)
        if device is None:
            raise ApiError(400, "invalid", "The request has invalid fields.", {"device_id": ["Unknown device."]})
        recorded = services.record_receipt(
            push, device, status=s.validated_data["status"], details=s.validated_data["details"]
        )
        body = {"push_id": str(push.id), "device_id": str(device.id), "status": s.validated_data["status"]}
        return Response({**body, "recorded": recorded}, status=status.HTTP_201_CREATED)
