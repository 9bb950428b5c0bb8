"""Messaging REST API (DESIGN.md API table): groups, send, sync/history, receipts, unread.

Views are thin: validate with a serializer, call messaging.services / messaging.queries, render.
"""

from __future__ import annotations

from datetime import datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.validators import storable_unicode
from messaging import queries, services

MAX_SEQ = 2**63 - 1  # bigint: larger cursors would fail in PostgreSQL, so they are a 400 here


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a JSON string only (DRF would also take an integer and turn 5 into a UUID)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class SendMessageSerializer(serializers.Serializer):
    client_generated_id = StrictUUIDField()
    body = serializers.CharField(
        min_length=1,
        max_length=services.MAX_BODY_CHARS,
        trim_whitespace=False,
        validators=[storable_unicode],
    )


class MessageSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    seq = serializers.IntegerField()
    sender_id = serializers.IntegerField()
    client_generated_id = serializers.UUIDField()
    body = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class SentMessageSerializer(MessageSerializer):
    group_id = serializers.UUIDField()


class MessagePageSerializer(serializers.Serializer):
    messages = MessageSerializer(many=True)
    has_more = serializers.BooleanField()
    latest_seq = serializers.IntegerField()


class MessageCursorSerializer(serializers.Serializer):
    after_seq = serializers.IntegerField(required=False, min_value=0, max_value=MAX_SEQ)
    before_seq = serializers.IntegerField(required=False, min_value=1, max_value=MAX_SEQ)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_SEQ)

    def to_internal_value(self, data):
        # Query strings: one value per cursor; "?after_seq=1&after_seq=2" is ambiguous.
        if hasattr(data, "getlist"):
            repeated = {k: ["Give this parameter once."] for k in self.fields if len(data.getlist(k)) > 1}
            if repeated:
                raise serializers.ValidationError(repeated)
            data = {k: data.get(k) for k in self.fields if k in data}
        return super().to_internal_value(data)

    def validate(self, attrs):
        if "after_seq" in attrs and "before_seq" in attrs:
            raise serializers.ValidationError(
                {"non_field_errors": ["Give after_seq or before_seq, not both."]}, code="both_cursors"
            )
        return attrs


class ReceiptSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=services.RECEIPT_STATUSES)
    up_to_seq = serializers.IntegerField(min_value=0, max_value=MAX_SEQ)


class GroupSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    latest_seq = serializers.IntegerField()
    unread = serializers.IntegerField()
    delivered_seq = serializers.IntegerField()
    read_seq = serializers.IntegerField()
    is_blocked = serializers.BooleanField()


WatermarksSerializer = inline_serializer(
    "Watermarks", {"delivered_seq": serializers.IntegerField(), "read_seq": serializers.IntegerField()}
)
UnreadSerializer = inline_serializer(
    "Unread", {"unread": serializers.IntegerField(), "latest_seq": serializers.IntegerField()}
)
GroupListSerializer = inline_serializer("GroupList", {"groups": GroupSummarySerializer(many=True)})

ERRORS = {
    400: OpenApiTypes.OBJECT,
    401: OpenApiTypes.OBJECT,
    404: OpenApiTypes.OBJECT,
}


def _iso(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text  # DRF's DateTimeField style


def _message_json(row: dict) -> dict:
    return {
        "id": str(row["id"]),
        "seq": row["seq"],
        "sender_id": row["sender_id"],
        "client_generated_id": str(row["client_generated_id"]),
        "body": row["body"],
        "status": row["status"],
        "created_at": _iso(row["created_at"]),
    }


class GroupListView(APIView):
    @extend_schema(
        summary="The caller's groups with latest_seq and unread",
        responses={200: GroupListSerializer, 401: OpenApiTypes.OBJECT},
        tags=["messaging"],
    )
    def get(self, request: Request) -> Response:
        groups = queries.groups_for_user(request.user)
        return Response({"groups": GroupSummarySerializer(groups, many=True).data})


class GroupMessagesView(APIView):
    @extend_schema(
        summary="Sync (after_seq) or page history (before_seq)",
        description=(
            "after_seq: messages with seq > after_seq in seq order. before_seq: the page just below "
            "before_seq, returned in seq order; has_more says older ones remain. Neither: after_seq=0. "
            "At most min(limit, flag sync.maxBatch) messages."
        ),
        parameters=[
            OpenApiParameter("after_seq", int, description="cursor: last seq the client has (≥ 0)"),
            OpenApiParameter("before_seq", int, description="page backwards below this seq (≥ 1)"),
            OpenApiParameter("limit", int, description="≥ 1; capped by sync.maxBatch"),
        ],
        responses={200: MessagePageSerializer, **ERRORS},
        tags=["messaging"],
    )
    def get(self, request: Request, group_id) -> Response:
        cursor = MessageCursorSerializer(data=request.query_params)
        cursor.is_valid(raise_exception=True)
        params = cursor.validated_data
        group = queries.membership_for(request.user, group_id).group
        if "before_seq" in params:
            page = queries.history_before(group, params["before_seq"], params.get("limit"))
        else:
            page = queries.sync_after(group, params.get("after_seq", 0), params.get("limit"))
        # Hand-built JSON for the hot sync path (same output as MessagePageSerializer, which
        # documents it): DRF field objects cost more than the index scan for 200 rows.
        page["messages"] = [_message_json(m) for m in page["messages"]]
        return Response(page)

    @extend_schema(
        summary="Send a message (idempotent on client_generated_id)",
        request=SendMessageSerializer,
        responses={
            201: SentMessageSerializer,
            200: SentMessageSerializer,
            403: OpenApiTypes.OBJECT,
            409: OpenApiTypes.OBJECT,
            **ERRORS,
        },
        tags=["messaging"],
    )
    def post(self, request: Request, group_id) -> Response:
        incoming = SendMessageSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        message, created = services.send_message(
            sender=request.user,
            group_id=group_id,
            client_generated_id=incoming.validated_data["client_generated_id"],
            body=incoming.validated_data["body"],
        )
        return Response(
            SentMessageSerializer(message).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class GroupReceiptsView(APIView):
    @extend_schema(
        summary="Advance the caller's delivered/read watermark",
        description="Watermarks never move backwards; up_to_seq beyond the latest seq is clamped to it.",
        request=ReceiptSerializer,
        responses={200: WatermarksSerializer, **ERRORS},
        tags=["messaging"],
    )
    def post(self, request: Request, group_id) -> Response:
        incoming = ReceiptSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        watermarks = services.record_receipt(user=request.user, group_id=group_id, **incoming.validated_data)
        return Response(watermarks)


class GroupUnreadView(APIView):
    @extend_schema(summary="Unread count of one group", responses={200: UnreadSerializer, **ERRORS}, tags=["messaging"])
    def get(self, request: Request, group_id) -> Response:
        group = queries.membership_for(request.user, group_id).group
        return Response(queries.unread_for(request.user, group))
