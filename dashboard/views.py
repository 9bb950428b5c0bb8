"""Staff dashboard pages: thin views over dashboard.queries, other apps' queries and their services.

Every view is wrapped in ``staff_view(<name>)`` (dashboard/permissions.py holds the role table).
Pages render in one round trip; charts fetch their JSON from ``deliveries_data`` afterwards.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboard import queries, services
from dashboard.forms import (
    KILL_SWITCH_KEY,
    AlertRuleForm,
    DeactivateDeviceForm,
    DeviceSearchForm,
    FlagEditForm,
)
from dashboard.permissions import allowed_views, roles_of, staff_view
from flags import queries as flag_queries
from flags import services as flag_services
from messaging import queries as messaging_queries
from pushes import queries as push_queries
from pushes import services as push_services
from realtime import queries as realtime_queries
from telemetry import queries as telemetry_queries

log = logging.getLogger("pushwatch.dashboard")

# --- page plumbing ------------------------------------------------------------------------------

NAV = [
    ("overview", "Overview"),
    ("deliveries", "Deliveries"),
    ("devices", "Devices"),
    ("trace", "Message trace"),
    ("flags", "Flags"),
    ("feed", "Live feed"),
    ("alerts", "Alerts"),
    ("client_health", "Client health"),
]


def page(request: HttpRequest, template: str, context: dict[str, Any], *, active: str, status: int = 200):
    """Render a dashboard page with the nav this user may use and every firing alert (shown on all pages)."""
    may = allowed_views(request.user)
    context.update(
        nav=[(name, label) for name, label in NAV if name in may],
        active=active,
        may=may,
        roles=sorted(roles_of(request.user)),
        firing_alerts=queries.firing_alerts(),
    )
    return render(request, template, context, status=status)


def _redact(key: str, value: Any) -> Any:
    """Full device tokens never reach a page, whatever shape another app's read returns."""
    if key == "token" and isinstance(value, str):
        from pushes.models import truncate_token

        return truncate_token(value)
    return value


def as_record(item: Any) -> dict[str, Any]:
    """A dict of plain values from a dict, a dataclass or a model instance (for generic tables)."""
    if isinstance(item, dict):
        data = dict(item)
    elif dataclasses.is_dataclass(item):
        data = dataclasses.asdict(item)
    elif hasattr(item, "_meta"):
        data = {f.attname: getattr(item, f.attname) for f in item._meta.concrete_fields}
    else:
        data = {"value": item}
    return {k: _redact(k, v) for k, v in data.items()}


def as_table(items: Any) -> dict[str, Any]:
    records = [as_record(i) for i in (items or [])]
    headers: list[str] = []
    for r in records:
        headers.extend(k for k in r if k not in headers)
    return {"headers": headers, "rows": [[r.get(h) for h in headers] for r in records]}


def _organization_param(request: HttpRequest) -> int | None:
    raw = request.GET.get("organization") or ""
    return int(raw) if raw.isdigit() else None


# --- login / logout (throttled) -----------------------------------------------------------------

LOGIN_FAILURE_LIMIT = 5
LOGIN_LOCKOUT_SECONDS = 15 * 60


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _login_keys(request: HttpRequest, username: str) -> list[str]:
    # Per address and per username: one guesser on many accounts, or many addresses on one account.
    return [f"dash:login-fail:ip:{_client_ip(request)}", f"dash:login-fail:user:{username.lower()[:150]}"]


class ThrottledLoginView(auth_views.LoginView):
    """Django's login view; after LOGIN_FAILURE_LIMIT failures in LOGIN_LOCKOUT_SECONDS it answers 429.

    Counters live in the shared cache (Redis), so every web process sees the same count.
    """

    template_name = "dashboard/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        if any((cache.get(k) or 0) >= LOGIN_FAILURE_LIMIT for k in _login_keys(request, username)):
            log.warning("[dashboard] login throttled ip=%s", _client_ip(request))
            # An unbound form: binding the POST would run authenticate() for a throttled client.
            form = self.get_form_class()(request)
            context = self.get_context_data(form=form, throttled=True)
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        for key in _login_keys(self.request, self.request.POST.get("username", "")):
            cache.add(key, 0, LOGIN_LOCKOUT_SECONDS)
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, LOGIN_LOCKOUT_SECONDS)
        return super().form_invalid(form)

    def form_valid(self, form):
        cache.delete_many(_login_keys(self.request, form.get_user().get_username()))
        return super().form_valid(form)


class DashboardLogoutView(auth_views.LogoutView):
    next_page = "dashboard:login"


# --- vendored assets ----------------------------------------------------------------------------


@require_GET
def plotly_js(request: HttpRequest) -> FileResponse:
    """plotly.min.js straight from the installed plotly package (no CDN: the machines are offline)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    response = FileResponse(path.open("rb"), content_type="text/javascript")
    response["Cache-Control"] = "public, max-age=86400"
    return response


# --- overview -----------------------------------------------------------------------------------


def _per_minute(count: int) -> float:
    return round(count / 5, 1)  # counted over the last five minutes


@staff_view("overview")
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    from flags.queries import flag_value, push_suppression_reason

    now = timezone.now()
    five_min_ago = now - timedelta(minutes=5)
    rates = queries.rates_since(now - timedelta(hours=24))
    context = {
        "messages_per_min": _per_minute(messaging_queries.count_messages_since(five_min_ago)),
        "pushes_per_min": _per_minute(push_queries.count_pushes_since(five_min_ago)),
        "rates": rates,
        "queue": push_queries.queue_depth(),
        "devices_by_platform": dict(push_queries.active_devices_by_platform()),
        "config_alarm": push_queries.configuration_alarm(),
        "kill_switch": bool(flag_value(KILL_SWITCH_KEY)),
        "suppression": push_suppression_reason(),
        "watermark": queries.rollup_watermark(),
    }
    return page(request, "dashboard/overview.html", context, active="overview")


# --- deliveries ---------------------------------------------------------------------------------


@staff_view("deliveries")
@require_GET
def deliveries(request: HttpRequest) -> HttpResponse:
    from messaging.queries import organization_choices

    rng = queries.parse_range(request.GET.get("range"))
    context = {
        "ranges": list(queries.RANGES.values()),
        "range": rng,
        "organizations": organization_choices(),
        "organization_id": _organization_param(request),
        "csv_charts": queries.CSV_CHARTS,
    }
    return page(request, "dashboard/deliveries.html", context, active="deliveries")


@staff_view("deliveries_data")
@require_GET
def deliveries_data(request: HttpRequest) -> JsonResponse:
    data = queries.deliveries_chart(request.GET.get("range"), _organization_param(request))
    return JsonResponse(data)


@staff_view("deliveries_csv")
@require_GET
def deliveries_csv(request: HttpRequest) -> HttpResponse:
    chart = request.GET.get("chart", "funnel")
    if chart not in queries.CSV_CHARTS:
        raise Http404("unknown chart")
    data = queries.deliveries_chart(request.GET.get("range"), _organization_param(request))
    response = HttpResponse(content_type="text/csv")
    org = data["organization_id"] or "all"
    response["Content-Disposition"] = f'attachment; filename="{chart}-{data["range"]}-org-{org}.csv"'
    writer = csv.writer(response)
    writer.writerows(queries.chart_csv_rows(chart, data))
    return response


# --- devices ------------------------------------------------------------------------------------


@staff_view("devices")
@require_GET
def devices(request: HttpRequest) -> HttpResponse:
    form = DeviceSearchForm(request.GET or None)
    results, searched = [], False
    if form.is_valid() and form.cleaned_data["q"]:
        searched = True
        results = push_queries.device_search(form.cleaned_data["q"])
    context = {
        "form": form,
        "searched": searched,
        "results": [as_record(r) for r in results],
    }
    return page(request, "dashboard/devices.html", context, active="devices")


def _device_or_404(device_id):
    device = push_queries.staff_device(device_id)
    if device is None:
        raise Http404("no such device")
    return device


@staff_view("device_detail")
@require_GET
def device_detail(request: HttpRequest, device_id) -> HttpResponse:
    device = _device_or_404(device_id)
    context = {
        "device": device,
        "timeline": merge_timeline(push_queries.device_timeline(device.pk) or {}),
        "deactivate_form": DeactivateDeviceForm(),
    }
    return page(request, "dashboard/device_detail.html", context, active="devices")


def _short(value: Any) -> str:
    return str(value)[:8] if value else ""


def _as_dict(value: Any) -> dict[str, Any]:
    """jsonb read through a raw cursor arrives as text; tolerate both (and junk)."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            return {"detail": value}
    return value if isinstance(value, dict) else {}


def merge_timeline(timeline: dict[str, Any]) -> list[dict[str, Any]]:
    """The user's pushes and this device's delivery log lines as one list, newest first.

    A suppressed push has no log line but still explains a missing notification, so pushes are shown too.
    """
    entries = []
    for p in timeline.get("pushes") or []:
        reason = p.get("status_reason") or p.get("last_error") or ""
        what = "test push" if not p.get("group_id") else f"{p.get('message_count') or 1} message(s)"
        entries.append({
            "at": p.get("created_at") or "", "kind": "push", "status": p.get("status"), "push": _short(p.get("id")),
            "summary": f"{what} · attempts {p.get('delivery_attempts') or 0}", "reason": reason,
        })  # fmt: skip
    for entry in timeline.get("logs") or []:
        details = _as_dict(entry.get("details"))
        reason = " ".join(str(details[k]) for k in ("error_code", "detail", "http_status") if details.get(k))
        entries.append({
            "at": entry.get("created_at") or "", "kind": "log", "status": entry.get("status"),
            "push": _short(entry.get("push_id")), "summary": f"push is {entry.get('push_status')}", "reason": reason,
        })  # fmt: skip
    entries.sort(key=lambda e: str(e["at"]), reverse=True)
    return entries


@staff_view("device_deactivate")
@require_POST
def device_deactivate(request: HttpRequest, device_id) -> HttpResponse:
    device = _device_or_404(device_id)
    form = DeactivateDeviceForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A reason is required to deactivate a device.")
    else:
        reason = form.cleaned_data["reason"]
        changed = push_services.deactivate_device(device, reason=reason, by=request.user)
        log.info("[dashboard] device deactivated device=%s by=%s changed=%s", device.pk, request.user.pk, changed)
        if changed:
            messages.success(request, f"Device {device.token_prefix} deactivated: {reason}")
        else:
            messages.info(request, f"Device {device.token_prefix} was already inactive.")
    return redirect("dashboard:device_detail", device_id=device.pk)


@staff_view("device_test_push")
@require_POST
def device_test_push(request: HttpRequest, device_id) -> HttpResponse:
    device = _device_or_404(device_id)
    try:
        push = push_services.send_test_push(device, by=request.user)
    except (ValidationError, ValueError) as exc:
        messages.error(request, f"Test push refused: {'; '.join(getattr(exc, 'messages', [str(exc)]))}")
    else:
        messages.success(request, f"Test push {push.pk} queued for {device.token_prefix} ({push.status}).")
    return redirect("dashboard:device_detail", device_id=device.pk)


# --- message trace ------------------------------------------------------------------------------


@staff_view("trace")
@require_GET
def trace(request: HttpRequest) -> HttpResponse:
    message_id = (request.GET.get("message") or "").strip()
    message = messaging_queries.message_for_trace(message_id) if message_id else None
    context = {
        "message_id": message_id,
        "message": message,
        "recipients": push_queries.trace_message(message) if message is not None else [],
        "searched": bool(message_id),
    }
    return page(request, "dashboard/trace.html", context, active="trace")


# --- flags --------------------------------------------------------------------------------------


def _flag_rows() -> list[dict[str, Any]]:
    return [as_record(f) for f in flag_queries.list_flags()]


@staff_view("flags")
@require_GET
def flags(request: HttpRequest) -> HttpResponse:
    rows = _flag_rows()
    # The flags app answers history per key: merge the few flags' newest changes into one list.
    history = [{"key": row["key"], **change} for row in rows for change in flag_queries.flag_history(row["key"], 20)]
    history.sort(key=lambda c: (c["created_at"], c.get("id", 0)), reverse=True)
    context = {
        "flags": rows,
        "kill_switch": next((r for r in rows if r.get("key") == KILL_SWITCH_KEY), None),
        "kill_switch_key": KILL_SWITCH_KEY,
        "history": history[:50],
    }
    return page(request, "dashboard/flags.html", context, active="flags")


@staff_view("flag_edit")
def flag_edit(request: HttpRequest, key: str) -> HttpResponse:
    import json

    flag = next((r for r in _flag_rows() if r.get("key") == key), None)
    if flag is None:
        raise Http404("no such flag")
    if request.method == "POST":
        form = FlagEditForm(request.POST, flag_key=key)
        if form.is_valid():
            try:
                flag_services.set_flag(
                    key, form.cleaned_data["value"], changed_by=request.user, reason=form.cleaned_data["reason"]
                )
            except ValidationError as exc:
                # The service names the bad field (value, rules, reason, key); show each beside its input.
                for field, problems in getattr(exc, "message_dict", {"value": exc.messages}).items():
                    form.add_error(field if field in form.fields else None, problems)
            else:
                messages.success(request, f"{key} set to {json.dumps(form.cleaned_data['value'])}.")
                return redirect("dashboard:flags")
    else:
        initial = json.dumps(flag.get("value"))
        if key == KILL_SWITCH_KEY:
            initial = json.dumps(not bool(flag.get("value")))  # the one sensible change is the flip
        form = FlagEditForm(initial={"value": initial}, flag_key=key)
    history = [{"key": key, **c} for c in flag_queries.flag_history(key, 20)]
    context = {
        "key": key,
        "flag": flag,
        "form": form,
        "is_kill_switch": key == KILL_SWITCH_KEY,
        "history": history,
    }
    return page(request, "dashboard/flag_edit.html", context, active="flags", status=400 if form.errors else 200)


# --- live feed ----------------------------------------------------------------------------------


@staff_view("feed")
@require_GET
def feed(request: HttpRequest) -> HttpResponse:
    from messaging.queries import organization_choices
    from realtime.queries import recent_events

    latest = recent_events(limit=1)
    recent = list(reversed(recent_events(limit=50)))
    context = {
        "organizations": organization_choices(),
        "since": latest[0]["id"] if latest else 0,
        "recent": recent,
        "loss": realtime_queries.feed_loss_counters(),
    }
    return page(request, "dashboard/feed.html", context, active="feed")


# --- alerts -------------------------------------------------------------------------------------


def _alert_form(data=None) -> AlertRuleForm:
    from messaging.queries import organization_choices

    form = AlertRuleForm(data)
    form.fields["organization_id"].choices = [("", "all organizations"), *organization_choices()]
    return form


@staff_view("alerts")
@require_GET
def alerts(request: HttpRequest) -> HttpResponse:
    context = {"rules": queries.alert_rules(), "form": _alert_form()}
    return page(request, "dashboard/alerts.html", context, active="alerts")


@staff_view("alert_create")
@require_POST
def alert_create(request: HttpRequest) -> HttpResponse:
    form = _alert_form(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        services.create_alert_rule(
            name=data["name"],
            metric=data["metric"],
            comparison=data["comparison"],
            threshold=data["threshold"],
            window_minutes=data["window_minutes"],
            min_volume=data["min_volume"],
            organization_id=data["organization_id"],
            by=request.user,
        )
        messages.success(request, f"Alert rule {data['name']} created.")
        return redirect("dashboard:alerts")
    context = {"rules": queries.alert_rules(), "form": form}
    return page(request, "dashboard/alerts.html", context, active="alerts", status=400)


@staff_view("alert_delete")
@require_POST
def alert_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    if not services.delete_alert_rule(rule_id):
        raise Http404("no such alert rule")
    messages.success(request, "Alert rule deleted.")
    return redirect("dashboard:alerts")


# --- client health ------------------------------------------------------------------------------


@staff_view("client_health")
@require_GET
def client_health(request: HttpRequest) -> HttpResponse:
    from messaging.queries import organization_choices

    organization_id = _organization_param(request)
    since = timezone.now() - timedelta(hours=24)
    series = telemetry_queries.client_health_series(since, organization_id=organization_id)
    summary = telemetry_queries.client_health_summary(since, organization_id=organization_id)
    rows = [as_record(r) for r in series]
    for r in rows:
        if hasattr(r.get("hour"), "isoformat"):
            r["hour"] = r["hour"].isoformat()
    context = {
        "series": rows,
        "summary": summary or {},
        "organizations": organization_choices(),
        "organization_id": organization_id,
    }
    return page(request, "dashboard/client_health.html", context, active="client_health")
