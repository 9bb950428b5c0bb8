"""Dashboard reads: chart series from the rollup tables (never raw logs), KPIs, alerts.

Reads of other apps go through their ``queries.py`` (the views import those modules directly).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from dashboard.models import AlertRule, Granularity, HistogramMetric

# --- ranges -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartRange:
    key: str
    label: str
    granularity: str
    buckets: int
    step: timedelta

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """[start, end) aligned to whole buckets, ending with the current (partial) one."""
        now = now or timezone.now()
        if self.granularity == Granularity.HOUR:
            current = now.replace(minute=0, second=0, microsecond=0)
        else:
            current = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return current - self.step * (self.buckets - 1), current + self.step

    def bucket_starts(self, now: datetime | None = None) -> list[datetime]:
        start, _ = self.window(now)
        return [start + self.step * i for i in range(self.buckets)]


RANGES: dict[str, ChartRange] = {
    "24h": ChartRange("24h", "24 hours", Granularity.HOUR, 24, timedelta(hours=1)),
    "7d": ChartRange("7d", "7 days", Granularity.DAY, 7, timedelta(days=1)),
    "30d": ChartRange("30d", "30 days", Granularity.DAY, 30, timedelta(days=1)),
}
DEFAULT_RANGE = "7d"


def parse_range(value: str | None) -> ChartRange:
    return RANGES.get(value or "", RANGES[DEFAULT_RANGE])


# --- deliveries charts --------------------------------------------------------------------------


def _scope_filter(organization_id: int | None) -> tuple[str, list]:
    """All organizations read the pre-summed "all" rows; one organization reads its own "org" rows."""
    if organization_id is None:
        return "scope = 'all'", []
    return "scope = 'org' AND organization_id = %s", [organization_id]


def _delivery_rows(rng: ChartRange, organization_id: int | None, now: datetime | None = None) -> list[tuple]:
    start, end = rng.window(now)
    sql = """
        SELECT extract(epoch FROM bucket_start)::bigint, platform, status, error_code, sum(count)::bigint
        FROM dashboard_deliveryrollup
        WHERE granularity = %s AND bucket_start >= %s AND bucket_start < %s AND {scope}
        GROUP BY 1, 2, 3, 4
    """
    scope, params = _scope_filter(organization_id)
    with connection.cursor() as cur:
        cur.execute(sql.format(scope=scope), [rng.granularity, start, end, *params])
        return cur.fetchall()


def _histogram_rows(rng: ChartRange, organization_id: int | None, now: datetime | None = None) -> list[tuple]:
    start, end = rng.window(now)
    sql = """
        SELECT extract(epoch FROM bucket_start)::bigint, metric, upper_bound, sum(count)::bigint
        FROM dashboard_histogramrollup
        WHERE granularity = %s AND bucket_start >= %s AND bucket_start < %s AND {scope}
        GROUP BY 1, 2, 3
    """
    scope, params = _scope_filter(organization_id)
    with connection.cursor() as cur:
        cur.execute(sql.format(scope=scope), [rng.granularity, start, end, *params])
        return cur.fetchall()


def histogram_percentile(buckets: dict[int, int], pct: float) -> int | None:
    """The upper edge of the bucket holding the ``pct`` percentile (an upper bound on the true value)."""
    total = sum(buckets.values())
    if not total:
        return None
    target = total * pct / 100
    running = 0
    for edge in sorted(buckets):
        running += buckets[edge]
        if running >= target:
            return edge
    return max(buckets)


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def deliveries_chart(range_key: str | None = None, organization_id: int | None = None,
                     now: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """Everything the Deliveries page draws, from two small rollup queries."""
    rng = parse_range(range_key)
    starts = rng.bucket_starts(now)
    # Buckets come back as epoch seconds: cheaper to load than timestamps, and exact for whole hours.
    index = {int(b.timestamp()): i for i, b in enumerate(starts)}
    labels = [b.isoformat() for b in starts]
    n = len(starts)

    funnel = {s: [0] * n for s in ("sent", "delivered", "opened", "failed")}
    by_platform: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"sent": [0] * n, "delivered": [0] * n})
    errors: dict[str, int] = defaultdict(int)
    for bucket, platform, status, error_code, count in _delivery_rows(rng, organization_id, now):
        i = index.get(bucket)
        if i is None:
            continue
        if status in funnel:
            funnel[status][i] += count
        if status in ("sent", "delivered"):
            by_platform[platform or "unknown"][status][i] += count
        if status == "failed":
            errors[error_code or "unknown"] += count

    latency: dict[str, list[dict[int, int]]] = {
        HistogramMetric.ACCEPT_MS: [defaultdict(int) for _ in range(n)],
        HistogramMetric.DELIVER_MS: [defaultdict(int) for _ in range(n)],
    }
    latency_total: dict[str, dict[int, int]] = {m: defaultdict(int) for m in latency}
    per_push: dict[int, int] = defaultdict(int)
    for bucket, metric, upper, count in _histogram_rows(rng, organization_id, now):
        i = index.get(bucket)
        if i is None:
            continue
        if metric == HistogramMetric.MESSAGES_PER_PUSH:
            per_push[upper] += count
        elif metric in latency:
            latency[metric][i][upper] += count
            latency_total[metric][upper] += count

    latency_series = {
        metric: {f"p{p}": [histogram_percentile(h, p) for h in hists] for p in (50, 90, 99)}
        for metric, hists in latency.items()
    }
    latency_summary = {
        metric: {f"p{p}": histogram_percentile(h, p) for p in (50, 90, 99)} for metric, h in latency_total.items()
    }
    pushes_sent = sum(per_push.values())
    return {
        "range": rng.key,
        "granularity": rng.granularity,
        "organization_id": organization_id,
        "buckets": labels,
        "funnel": funnel,
        "rate_by_platform": {
            platform: [_rate(d, s) for s, d in zip(v["sent"], v["delivered"], strict=True)]
            for platform, v in sorted(by_platform.items())
        },
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "latency": latency_series,
        "latency_summary": latency_summary,
        "messages_per_push": {
            "counts": {str(k): per_push[k] for k in sorted(per_push)},
            "mean": round(sum(k * v for k, v in per_push.items()) / pushes_sent, 3) if pushes_sent else None,
        },
        "totals": {s: sum(v) for s, v in funnel.items()},
    }


CSV_CHARTS = ("funnel", "rate_by_platform", "errors", "latency", "messages_per_push")


def chart_csv_rows(chart: str, data: dict[str, Any]) -> list[list[Any]]:
    """The rows of one chart exactly as drawn (header first)."""
    buckets = data["buckets"]
    if chart == "funnel":
        f = data["funnel"]
        return [["bucket_start", "sent", "delivered", "opened", "failed"]] + [
            [b, f["sent"][i], f["delivered"][i], f["opened"][i], f["failed"][i]] for i, b in enumerate(buckets)
        ]
    if chart == "rate_by_platform":
        platforms = list(data["rate_by_platform"])
        return [["bucket_start", *platforms]] + [
            [b, *(data["rate_by_platform"][p][i] for p in platforms)] for i, b in enumerate(buckets)
        ]
    if chart == "errors":
        return [["error_code", "count"]] + [[k, v] for k, v in data["errors"].items()]
    if chart == "latency":
        header = ["bucket_start"] + [f"{m}_{p}" for m in data["latency"] for p in ("p50", "p90", "p99")]
        return [header] + [
            [b] + [data["latency"][m][p][i] for m in data["latency"] for p in ("p50", "p90", "p99")]
            for i, b in enumerate(buckets)
        ]
    if chart == "messages_per_push":
        return [["messages_in_push", "pushes"]] + [[k, v] for k, v in data["messages_per_push"]["counts"].items()]
    raise ValueError(chart)


# --- KPIs and alerts ------------------------------------------------------------------------------


def rates_since(since: datetime, organization_id: int | None = None) -> dict[str, Any]:
    """Sent/delivered/failed counts and rates from the hour rollups whose bucket overlaps ``since``.

    Hour buckets make the window up to an hour wider than asked; good enough for alerting and KPIs.
    """
    floor = since.replace(minute=0, second=0, microsecond=0)
    sql = """
        SELECT status, sum(count)::bigint FROM dashboard_deliveryrollup
        WHERE granularity = 'hour' AND bucket_start >= %s AND {scope}
        GROUP BY status
    """
    scope, params = _scope_filter(organization_id)
    with connection.cursor() as cur:
        cur.execute(sql.format(scope=scope), [floor, *params])
        counts = {status: int(total) for status, total in cur.fetchall()}
    sent, delivered, failed = counts.get("sent", 0), counts.get("delivered", 0), counts.get("failed", 0)
    attempted = sent + failed
    return {
        "sent": sent,
        "delivered": delivered,
        "opened": counts.get("opened", 0),
        "failed": failed,
        "attempted": attempted,
        "delivery_rate": _rate(delivered, sent),
        "error_rate": _rate(failed, attempted),
    }


def firing_alerts() -> list[AlertRule]:
    return list(AlertRule.objects.filter(firing=True, enabled=True).select_related("organization"))


def alert_rules() -> list[AlertRule]:
    return list(AlertRule.objects.select_related("organization", "created_by").order_by("name"))


def rollup_watermark() -> dict[str, Any]:
    from dashboard.models import RollupWatermark
    from dashboard.services import DELIVERY_WATERMARK

    mark = RollupWatermark.objects.filter(name=DELIVERY_WATERMARK).first()
    return {"last_id": mark.last_id if mark else 0, "updated_at": mark.updated_at if mark else None}
