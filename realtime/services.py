"""Realtime writes. CONTRACT (other apps call this; keep the signature):

``emit(organization, event_type, entity_type, entity_id, payload, dedupe_key=None) -> event id | None``
``organization`` is an Organization, its id, or None (system-wide, staff only). Best effort: never raises.
"""

from __future__ import annotations

import logging

log = logging.getLogger("pushwatch.realtime")


def emit(organization, event_type: str, entity_type: str, entity_id, payload: dict | None = None,
         dedupe_key: str | None = None) -> int | None:  # fmt: skip
    try:
        from realtime.models import RealtimeEvent

        org_id = getattr(organization, "pk", organization)
        event = RealtimeEvent.objects.create(
            organization_id=org_id,
            event_type=event_type,
            entity_type=entity_type,
            entity_id=str(entity_id),
            payload=payload or {},
            dedupe_key=dedupe_key,
        )
        return event.id
    except Exception:
        log.exception("[rt] emit failed type=%s", event_type)
        return None
