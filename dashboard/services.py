"""Dashboard writes: the incremental chart rollups, alert rules and their evaluation.

The rollup reads new delivery-log rows by id (a watermark), aggregates them set-based in SQL and adds
the counts into hour and day buckets with ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``. It never
re-reads a row, so the cost of a refresh is proportional to the rows added since the last one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from dashboard.models import AlertComparison, AlertMetric, AlertRule, RollupWatermark

log = logging.getLogger("pushwatch.dashboard")

DELIVERY_WATERMARK = "delivery_logs"
# Rows younger than this are left for the next run: a bigserial id is taken at INSERT but becomes
# visible at COMMIT, so a slow transaction could otherwise commit a lower id behind the watermark.
DEFAULT_SETTLE_SECONDS = 5.0
# One run reads at most this many ids, keeping each transaction short; the task loops until caught up.
DEFAULT_CHUNK_ROWS = 500_000
# Exclusive upper edges of the latency buckets (ms). Values past the last edge land in OVERFLOW_EDGE.
LATENCY_EDGES_MS = [0, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 3_600_000]
OVERFLOW_EDGE = 86_400_000
MESSAGES_PER_PUSH_CAP = 100  # message_count is stored exactly up to this, larger counts share its bucket


def _tables() -> dict[str, str]:
    from messaging.models import Message, User
    from pushes.models import PushDeliveryLog, PushNotification, UserDevice

    return {
        "log": PushDeliveryLog._meta.db_table,
        "push": PushNotification._meta.db_table,
        "device": UserDevice._meta.db_table,
        "user": User._meta.db_table,
        "message": Message._meta.db_table,
    }


# The source rows of one refresh, with the dimensions the charts slice by. Test pushes have no
# message: their latency counts from the push's creation instead.
_SOURCE_SQL = """
    SELECT l.id, l.created_at, l.status,
           COALESCE(NULLIF(l.details->>'error_code', ''), '') AS error_code,
           u.organization_id, COALESCE(d.platform, '') AS platform,
           GREATEST(0, EXTRACT(EPOCH FROM (l.created_at - COALESCE(m.created_at, p.created_at))) * 1000)
               AS latency_ms,
           p.message_count
    FROM {log} l
    JOIN {push} p ON p.id = l.push_id
    JOIN {user} u ON u.id = p.recipient_id
    LEFT JOIN {device} d ON d.id = l.device_id
    LEFT JOIN {message} m ON m.id = p.message_id
    WHERE l.id > %(lo)s AND l.id <= %(hi)s
"""

_GRANULARITIES = "(VALUES ('hour'), ('day')) AS g(unit)"

# Each source row lands in an hour and a day bucket, once per organization ("org" scope) and once in
# the all-organizations total ("all" scope, organization NULL) via GROUPING SETS: one pass, one statement.
_DELIVERY_ROLLUP_SQL = """
    WITH src AS ({source}),
    bucketed AS (
        SELECT date_trunc(g.unit, src.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket_start,
               g.unit AS granularity, src.organization_id, src.platform, src.status, src.error_code
        FROM src CROSS JOIN {granularities}
    )
    INSERT INTO dashboard_deliveryrollup
        (bucket_start, granularity, scope, organization_id, platform, status, error_code, count)
    SELECT bucket_start, granularity, CASE GROUPING(organization_id) WHEN 1 THEN 'all' ELSE 'org' END,
           organization_id, platform, status, error_code, count(*)
    FROM bucketed
    GROUP BY GROUPING SETS (
        (bucket_start, granularity, organization_id, platform, status, error_code),
        (bucket_start, granularity, platform, status, error_code)
    )
    ON CONFLICT ON CONSTRAINT delivery_rollup_bucket_unique
    DO UPDATE SET count = dashboard_deliveryrollup.count + EXCLUDED.count
"""

_HISTOGRAM_ROLLUP_SQL = """
    WITH src AS ({source}),
    measured AS (
        SELECT created_at, organization_id, platform,
               CASE status WHEN 'sent' THEN 'accept_ms' ELSE 'deliver_ms' END AS metric,
               COALESCE((%(edges)s::bigint[])[width_bucket(latency_ms, %(edges)s::bigint[]) + 1],
                        %(overflow)s) AS upper_bound
        FROM src WHERE status IN ('sent', 'delivered')
        UNION ALL
        SELECT created_at, organization_id, platform, 'msgs_per_push', LEAST(message_count, %(cap)s)
        FROM src WHERE status = 'sent'
    ),
    bucketed AS (
        SELECT date_trunc(g.unit, measured.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket_start,
               g.unit AS granularity, measured.organization_id, measured.platform, measured.metric,
               measured.upper_bound
        FROM measured CROSS JOIN {granularities}
    )
    INSERT INTO dashboard_histogramrollup
        (bucket_start, granularity, scope, organization_id, platform, metric, upper_bound, count)
    SELECT bucket_start, granularity, CASE GROUPING(organization_id) WHEN 1 THEN 'all' ELSE 'org' END,
           organization_id, platform, metric, upper_bound, count(*)
    FROM bucketed
    GROUP BY GROUPING SETS (
        (bucket_start, granularity, organization_id, platform, metric, upper_bound),
        (bucket_start, granularity, platform, metric, upper_bound)
    )
    ON CONFLICT ON CONSTRAINT histogram_rollup_bucket_unique
    DO UPDATE SET count = dashboard_histogramrollup.count + EXCLUDED.count
"""


@dataclass(frozen=True)
class RefreshResult:
    from_id: int
    to_id: int
    rows: int


def _settled_high_id(settle_seconds: float) -> int:
    """The highest log id that is safe to fold: below every row younger than ``settle_seconds``."""
    t = _tables()
    with connection.cursor() as cur:
        cur.execute(f"SELECT max(id) FROM {t['log']}")
        (max_id,) = cur.fetchone()
        if max_id is None:
            return 0
        if settle_seconds <= 0:
            return max_id
        # Uses the created_at index over the few recent rows only.
        cur.execute(
            f"SELECT min(id) FROM {t['log']} WHERE created_at > now() - make_interval(secs => %s)",
            [settle_seconds],
        )
        (first_young,) = cur.fetchone()
    return max_id if first_young is None else first_young - 1


def refresh_rollups_once(*, settle_seconds: float = DEFAULT_SETTLE_SECONDS,
                         chunk_rows: int = DEFAULT_CHUNK_ROWS) -> RefreshResult:  # fmt: skip
    """Fold the delivery logs after the watermark (at most ``chunk_rows`` ids) into the rollups.

    The watermark row is locked for the whole transaction, so two concurrent refreshes (two beat
    schedulers, a manual run) serialise instead of counting the same rows twice.
    """
    RollupWatermark.objects.get_or_create(name=DELIVERY_WATERMARK)
    with transaction.atomic():
        mark = RollupWatermark.objects.select_for_update().get(name=DELIVERY_WATERMARK)
        lo = mark.last_id
        hi = min(_settled_high_id(settle_seconds), lo + chunk_rows)
        if hi <= lo:
            return RefreshResult(lo, lo, 0)
        t = _tables()
        source = _SOURCE_SQL.format(**t)
        params = {
            "lo": lo,
            "hi": hi,
            "edges": LATENCY_EDGES_MS,
            "overflow": OVERFLOW_EDGE,
            "cap": MESSAGES_PER_PUSH_CAP,
        }
        with connection.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {t['log']} WHERE id > %(lo)s AND id <= %(hi)s", params)
            (rows,) = cur.fetchone()
            cur.execute(_DELIVERY_ROLLUP_SQL.format(source=source, granularities=_GRANULARITIES), params)
            cur.execute(_HISTOGRAM_ROLLUP_SQL.format(source=source, granularities=_GRANULARITIES), params)
        mark.last_id = hi
        mark.save(update_fields=["last_id", "updated_at"])
    log.info("[dashboard] rollups refreshed ids=(%s, %s] rows=%s", lo, hi, rows)
    return RefreshResult(lo, hi, rows)


def refresh_rollups(*, settle_seconds: float = DEFAULT_SETTLE_SECONDS, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                    max_chunks: int = 20) -> int:  # fmt: skip
    """Catch up (in chunks) and return how many log rows were folded."""
    total = 0
    for _ in range(max_chunks):
        result = refresh_rollups_once(settle_seconds=settle_seconds, chunk_rows=chunk_rows)
        total += result.rows
        if result.to_id - result.from_id < chunk_rows:
            break
    return total


# --- alerts -------------------------------------------------------------------------------------


def create_alert_rule(*, name: str, metric: str, comparison: str, threshold: float, window_minutes: int,
                      min_volume: int, organization_id: int | None = None, by=None) -> AlertRule:  # fmt: skip
    rule = AlertRule(
        name=name,
        metric=metric,
        comparison=comparison,
        threshold=threshold,
        window_minutes=window_minutes,
        min_volume=min_volume,
        organization_id=organization_id,
        created_by=by,
    )
    rule.full_clean()
    rule.save()
    return rule


def delete_alert_rule(rule_id: int) -> bool:
    deleted, _ = AlertRule.objects.filter(pk=rule_id).delete()
    return bool(deleted)


def _is_breached(rule: AlertRule, value: float) -> bool:
    if rule.comparison == AlertComparison.BELOW:
        return value < rule.threshold
    return value > rule.threshold


def evaluate_alerts(now=None) -> list[AlertRule]:
    """Evaluate every enabled rule from the hour rollups; emit an event when one starts or stops firing.

    Returns the rules whose firing state changed.
    """
    from dashboard import queries

    now = now or timezone.now()
    changed: list[AlertRule] = []
    for rule in AlertRule.objects.filter(enabled=True):
        since = now - timedelta(minutes=rule.window_minutes)
        rates = queries.rates_since(since, organization_id=rule.organization_id)
        if rule.metric == AlertMetric.DELIVERY_RATE:
            value, volume = rates["delivery_rate"], rates["sent"]
        else:
            value, volume = rates["error_rate"], rates["attempted"]
        rule.last_evaluated_at = now
        rule.last_value = value
        rule.last_volume = volume
        fields = ["last_evaluated_at", "last_value", "last_volume"]
        if value is not None and volume >= rule.min_volume:
            breached = _is_breached(rule, value)
            if breached != rule.firing:
                rule.firing = breached
                rule.fired_at = now if breached else rule.fired_at
                fields += ["firing", "fired_at"]
                changed.append(rule)
        rule.save(update_fields=fields)
    for rule in changed:
        _emit_alert_event(rule)
    return changed


def _emit_alert_event(rule: AlertRule) -> None:
    from realtime.services import emit

    event_type = "alert.firing" if rule.firing else "alert.resolved"
    emit(
        rule.organization_id,
        event_type,
        "alert_rule",
        rule.pk,
        {
            "name": rule.name,
            "metric": rule.metric,
            "comparison": rule.comparison,
            "threshold": rule.threshold,
            "value": rule.last_value,
            "window_minutes": rule.window_minutes,
        },
        dedupe_key=f"alert:{rule.pk}:{event_type}:{rule.last_evaluated_at:%Y%m%d%H%M}",
    )
