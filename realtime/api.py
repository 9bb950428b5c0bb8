"""``GET /api/v1/events``: catch-up by cursor, the caller's organization only (thin; reads via queries)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApiError
from realtime import queries


class EventsQuery(serializers.Serializer):
    since = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**63 - 1)
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=queries.MAX_PAGE)


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    organization_id = serializers.IntegerField()
    event_type = serializers.CharField()
    entity_type = serializers.CharField()
    entity_id = serializers.CharField()
    payload = serializers.JSONField()
    created_at = serializers.DateTimeField()


class EventsPage(serializers.Serializer):
    events = EventSerializer(many=True)
    next = serializers.IntegerField(help_text="The cursor for the next call's `since`.")


class EventsView(APIView):
    @extend_schema(parameters=[EventsQuery], responses=EventsPage, summary="Catch up on realtime events")
    def get(self, request: Request) -> Response:
        params = EventsQuery(data=request.query_params)
        params.is_valid(raise_exception=True)
        organization_id = getattr(request.user, "organization_id", None)
        if organization_id is None:
            # Staff accounts belong to no organization; they read events on the dashboard feed.
            raise ApiError(403, "no_organization", "This account belongs to no organization.")
        events, next_cursor = queries.events_page(
            organization_id, since=params.validated_data["since"], limit=params.validated_data["limit"]
        )
        return Response({"events": events, "next": next_cursor})
