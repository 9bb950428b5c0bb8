"""Telemetry writes: batch ingestion with COPY, idempotent flushes, and the fold into hourly counters.

Why an advisory lock around ingestion: ids come from a sequence but transactions commit out of order,
so "max(id) now" is not a safe fold horizon by itself. Every ingest holds a *shared* transaction-level
advisory lock while it writes; the fold takes the same lock *exclusively* for an instant to read
max(id). At that instant no ingest is in flight, so every row with a smaller id is committed (or gone),
and any later ingest draws larger ids. Ingests never wait for each other, only (for a moment) for a fold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import DatabaseError, OperationalError, connection, transaction
from django.utils import timezone
from rest_framework import status

from config.errors import ApiError
from telemetry.models import METADATA_MAX_BYTES, TelemetryBatch
from telemetry.parsing import copy_text, parse_log_line

log = logging.getLogger("pushwatch.telemetry")

MAX_ENTRIES = 500
MAX_BODY_BYTES = 1024 * 1024
EVENT_TYPE_MAX = 100
MESSAGE_MAX = 4096
IDEMPOTENCY_KEY_MAX = 200
IDEMPOTENCY_RETENTION = dt.timedelta(hours=24)
# pg_advisory_* key for "an ingest is writing" (shared) vs "the fold reads its horizon" (exclusive).
INGEST_LOCK_KEY = 0x7E1E_3E7A
FOLD_CHUNK_ROWS = 50_000
FOLD_LOCK_TIMEOUT_MS = 15_000
STREAM_ROWS = 100  # COPY lines per write while validating (see ingest_batch)

# Per-batch columns first: each COPY line is one shared prefix plus the entry's own columns.
_COPY_COLUMNS = (
    "batch_id, user_id, device_id, organization_id, platform, created_at, "
    "event_type, tag, action, reason, fields, message, metadata, client_ts"
)
_COPY_SQL = f"COPY telemetry_telemetrylog ({_COPY_COLUMNS}) FROM STDIN"
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # a JSON \u0000 that is not itself an escaped backslash
_KEY_ALLOWED = re.compile(r"^[\x21-\x7e]{1,200}$")
_UTC = dt.UTC
# One encoder, reused: json.dumps() with non-default options builds a new encoder on every call.
_METADATA_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class IngestResult:
    batch_id: uuid.UUID
    accepted: int
    replayed: bool = False


class BatchTooLarge(ApiError):
    def __init__(self, message: str):
        super().__init__(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "payload_too_large", message)


# --- validation ------------------------------------------------------------------------------------


def _text_problem(value: str) -> str | None:
    """PostgreSQL text refuses NUL, and UTF-8 cannot encode a lone surrogate (JSON "\\ud800" parses to one)."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode text"
    return None


def _parse_client_ts(value: Any) -> tuple[dt.datetime | None, str | None]:
    if not isinstance(value, str):
        return None, "required: an ISO 8601 timestamp string"
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None, "not an ISO 8601 timestamp"
    if parsed.tzinfo is None:  # clients log in UTC; a naive timestamp is read as UTC
        parsed = parsed.replace(tzinfo=_UTC)
    return parsed, None


def _metadata_json(value: Any) -> tuple[str | None, str | None]:
    if value is None or value == {}:
        return "{}", None
    if not isinstance(value, dict):
        return None, "must be a JSON object"
    try:
        text = _METADATA_ENCODER.encode(value)
    except (ValueError, RecursionError):
        return None, "must be finite JSON (no NaN/Infinity) and not nested too deeply"
    if len(text) > METADATA_MAX_BYTES:
        return None, f"larger than {METADATA_MAX_BYTES} bytes"
    if not text.isascii():
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            return None, "must be valid Unicode text"
        if size > METADATA_MAX_BYTES:
            return None, f"larger than {METADATA_MAX_BYTES} bytes"
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        return None, "must not contain NUL characters"
    return text, None


def check_batch_shape(entries: Any) -> None:
    """The cheap checks that come before any work: a JSON array of at most MAX_ENTRIES (else 400/413)."""
    if not isinstance(entries, list):
        raise ApiError(400, "invalid", "The body must be a JSON array of telemetry entries.")
    if len(entries) > MAX_ENTRIES:
        raise BatchTooLarge(f"A batch holds at most {MAX_ENTRIES} entries; this one has {len(entries)}.")


def iter_copy_fragments(entries: list, errors: dict[str, dict[str, list[str]]]) -> Iterator[str]:
    """Validate each entry; yield the valid ones' own columns (``event_type`` .. ``client_ts`` of
    ``_COPY_COLUMNS``) as COPY text, and record every bad index and field in ``errors``.

    Why text built here rather than ``copy.write_row()``: the values are validated strings already, so
    escaping is one regex probe each, and the per-batch columns are formatted once per batch, not per row."""
    for index, entry in enumerate(entries):
        if type(entry) is not dict:
            errors[str(index)] = {"non_field_errors": ["must be a JSON object"]}
            continue
        problems: dict[str, list[str]] = {}
        event_type = entry.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            problems["event_type"] = ["required: a non-empty string"]
        elif len(event_type) > EVENT_TYPE_MAX:
            problems["event_type"] = [f"at most {EVENT_TYPE_MAX} characters"]
        elif problem := _text_problem(event_type):
            problems["event_type"] = [problem]
        message = entry.get("message")
        if not isinstance(message, str):
            problems["message"] = ["required: a string"]
        elif len(message) > MESSAGE_MAX:
            problems["message"] = [f"at most {MESSAGE_MAX} characters"]
        elif problem := _text_problem(message):
            problems["message"] = [problem]
        client_ts, problem = _parse_client_ts(entry.get("client_ts"))
        if problem:
            problems["client_ts"] = [problem]
        metadata, problem = _metadata_json(entry.get("metadata"))
        if problem:
            problems["metadata"] = [problem]
        if problems:
            errors[str(index)] = problems
            continue
        parsed = parse_log_line(message)
        stored_message = message if parsed.message is None else parsed.message
        yield (f"{copy_text(event_type)}\t{parsed.copy_columns}\t{copy_text(stored_message)}\t{copy_text(metadata)}"
               f"\t{client_ts.isoformat()}")  # fmt: skip


def _invalid_batch(errors: dict, total: int) -> ApiError:
    return ApiError(400, "invalid", f"{len(errors)} of {total} entries are invalid; nothing was stored.", errors)


def build_rows(entries: Any) -> list[str]:
    """The whole batch validated up front (400 naming every bad index and field, or 413): its COPY fragments."""
    check_batch_shape(entries)
    errors: dict[str, dict[str, list[str]]] = {}
    rows = list(iter_copy_fragments(entries, errors))
    if errors:
        raise _invalid_batch(errors, len(entries))
    return rows


class _InvalidBatch(Exception):
    """Raised inside the COPY block to abort it (COPY FAIL) when validation finds a bad entry."""


def validate_idempotency_key(key: str | None) -> str | None:
    if key is None or key == "":
        return None
    if not _KEY_ALLOWED.match(key):
        raise ApiError(
            400,
            "invalid",
            "The Idempotency-Key header is malformed.",
            {"Idempotency-Key": [f"1-{IDEMPOTENCY_KEY_MAX} visible ASCII characters"]},
        )
    return key


# --- ingestion -------------------------------------------------------------------------------------


# The request's device if it is the user's, else the user's most recently seen active device. The ingest
# runs it in the same round trip as taking the shared ingest lock (one statement fewer per batch).
_DEVICE_SQL = """
SELECT {lock} d.id, d.platform
  FROM (SELECT 1) AS one
  LEFT JOIN LATERAL (
        SELECT id, platform FROM pushes_userdevice
         WHERE user_id = %(user)s AND (active OR id = %(wanted)s)
         ORDER BY (id = %(wanted)s) DESC NULLS LAST, last_seen_at DESC
         LIMIT 1) AS d ON true
"""


def _device_hint(device_id: str | uuid.UUID | None) -> uuid.UUID | None:
    if not device_id:
        return None
    try:
        return device_id if isinstance(device_id, uuid.UUID) else uuid.UUID(str(device_id))
    except ValueError:
        return None  # a garbled header only loses the hint, never the batch


def resolve_device(user_id: int, device_id: str | uuid.UUID | None) -> tuple[uuid.UUID | None, str]:
    """The request's device if it is the user's, else the user's most recently seen active device."""
    with connection.cursor() as cursor:
        cursor.execute(_DEVICE_SQL.format(lock=""), {"user": user_id, "wanted": _device_hint(device_id)})
        device_pk, platform = cursor.fetchone()
    return device_pk, platform or ""


def ingest_batch(
    user,
    entries: Any,
    *,
    device_id: str | uuid.UUID | None = None,
    idempotency_key: str | None = None,
    request_sha256: str | None = None,
) -> IngestResult:
    """Validate a flush and store it with one COPY. With an idempotency key, a retry (even a racing one)
    returns the first batch's answer and stores nothing; the same key with a different body is a 409."""
    idempotency_key = validate_idempotency_key(idempotency_key)
    check_batch_shape(entries)
    batch_id = uuid.uuid4()
    if not entries:
        return IngestResult(batch_id, 0)
    if idempotency_key and request_sha256 is None:
        request_sha256 = _fingerprint(entries)
    now = timezone.now()
    errors: dict[str, dict[str, list[str]]] = {}

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _DEVICE_SQL.format(lock="pg_advisory_xact_lock_shared(%(lock)s),"),
            {"lock": INGEST_LOCK_KEY, "user": user.pk, "wanted": _device_hint(device_id)},
        )
        _, device_pk, platform = cursor.fetchone()
        prefix = "\t".join(
            _null_or_text(v)
            for v in (batch_id, user.pk, device_pk, user.organization_id, platform or "", now.isoformat())
        )
        separator = f"\n{prefix}\t"
        if idempotency_key:
            # Racing retries meet at the unique index: the second waits for the first to commit, then
            # inserts nothing and reads the first's answer (READ COMMITTED: a new statement, a new snapshot).
            cursor.execute(
                "INSERT INTO telemetry_telemetrybatch (id, user_id, idempotency_key, request_sha256, accepted,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING id",
                [batch_id, user.pk, idempotency_key, request_sha256, len(entries), now],
            )
            if cursor.fetchone() is None:
                first = TelemetryBatch.objects.get(user_id=user.pk, idempotency_key=idempotency_key)
                if first.request_sha256 != request_sha256:
                    raise ApiError(
                        409,
                        "idempotency_key_reused",
                        "This Idempotency-Key was already used for a different batch.",
                        {"Idempotency-Key": ["already used with a different body"]},
                    )
                return IngestResult(first.id, first.accepted, replayed=True)
        try:
            # Validation streams into the COPY: PostgreSQL parses and indexes one chunk while Python checks
            # the next. The first bad entry stops the writing (validation goes on, to name every bad index),
            # and the COPY is aborted and the transaction rolled back, so nothing of the batch is stored.
            with cursor.cursor.copy(_COPY_SQL) as copy:
                pending: list[str] = []
                for fragment in iter_copy_fragments(entries, errors):
                    if errors:
                        continue
                    pending.append(fragment)
                    if len(pending) == STREAM_ROWS:
                        copy.write(prefix + "\t" + separator.join(pending) + "\n")
                        pending.clear()
                if errors:
                    raise _InvalidBatch
                if pending:
                    copy.write(prefix + "\t" + separator.join(pending) + "\n")
        except _InvalidBatch:
            raise _invalid_batch(errors, len(entries)) from None
        except (DatabaseError, psycopg.Error) as exc:
            # Only a value PostgreSQL judges differently from our validation can land here (e.g. jsonb
            # number normalisation past the size backstop): refuse the batch, never answer 500.
            log.warning("telemetry batch refused by the database: %s", exc)
            raise ApiError(400, "invalid", "The database refused this batch; nothing was stored.") from exc
    return IngestResult(batch_id, len(entries))


def _null_or_text(value: Any) -> str:
    return "\\N" if value is None else copy_text(str(value))


def _fingerprint(entries: Any) -> str:
    return hashlib.sha256(
        json.dumps(entries, sort_keys=True, ensure_ascii=False).encode("utf-8", "replace")
    ).hexdigest()


# --- folding into counters ------------------------------------------------------------------------

_FOLD_SQL = """
WITH marked AS (
    UPDATE telemetry_telemetrylog
       SET processed_at = %(now)s
     WHERE id > %(lo)s AND id <= %(hi)s
 RETURNING organization_id, platform, tag, action, reason,
           -- the client's time places the line in its hour; a clock ahead of ours is clamped to arrival
           LEAST(COALESCE(client_ts, created_at), created_at) AS at
), folded AS (
    INSERT INTO telemetry_telemetrycounter AS c (hour, organization_id, platform, tag, action, reason, count)
    SELECT date_trunc('hour', at), organization_id, platform, tag, action, reason, count(*)
      FROM marked
     GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (hour, organization_id, platform, tag, action, reason)
    DO UPDATE SET count = c.count + EXCLUDED.count
    RETURNING 1
)
SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM folded)
"""


def _fold_horizon() -> int:
    """The largest id below which every row is committed (see the module docstring)."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Bounded wait: a stuck ingest must not park a worker; the next beat tick simply tries again.
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{FOLD_LOCK_TIMEOUT_MS}ms"])
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INGEST_LOCK_KEY])
        cursor.execute("SELECT COALESCE(max(id), 0) FROM telemetry_telemetrylog")
        return cursor.fetchone()[0]


def fold_telemetry_counters(*, chunk_rows: int = FOLD_CHUNK_ROWS, max_chunks: int = 200) -> int:
    """Mark rows after the watermark processed and add them to the hourly counters, one set-based statement
    per chunk. Two folds at once are safe: the watermark row is locked FOR UPDATE, so the second waits and
    then starts after the first one's new watermark. Returns the number of log rows folded."""
    try:
        horizon = _fold_horizon()
    except OperationalError as exc:  # lock_timeout: an ingest held its lock too long
        log.warning("telemetry fold skipped this tick: %s", exc)
        return 0
    folded_rows = 0
    for _ in range(max_chunks):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO telemetry_telemetryfoldstate (name, last_id, updated_at) VALUES ('counters', 0, now())"
                " ON CONFLICT DO NOTHING"
            )
            cursor.execute("SELECT last_id FROM telemetry_telemetryfoldstate WHERE name = 'counters' FOR UPDATE")
            low = cursor.fetchone()[0]
            high = min(horizon, low + chunk_rows)
            if high <= low:
                break
            cursor.execute(_FOLD_SQL, {"lo": low, "hi": high, "now": timezone.now()})
            rows, buckets = cursor.fetchone()
            cursor.execute(
                "UPDATE telemetry_telemetryfoldstate SET last_id = %s, updated_at = now() WHERE name = 'counters'",
                [high],
            )
        folded_rows += rows
        log.debug("telemetry fold: ids (%s, %s] rows=%s buckets=%s", low, high, rows, buckets)
    TelemetryBatch.objects.filter(created_at__lt=timezone.now() - IDEMPOTENCY_RETENTION).delete()
    return folded_rows
