"""Each seed-000/004 log tag parses into tag, action, reason and fields."""

import pytest

from telemetry.parsing import parse_log_line


@pytest.mark.parametrize(
    ("message", "tag", "action", "reason", "fields"),
    [
        ("[push] wake reason=data", "push", "wake", "data", {"reason": "data"}),
        ("[rt] rebuild channel=group:42 status=SUBSCRIBED", "rt", "rebuild", "SUBSCRIBED",
         {"channel": "group:42", "status": "SUBSCRIBED"}),
        ("[rt] degraded backoff=3000", "rt", "degraded", "3000", {"backoff": "3000"}),
        ("[auth] writes:ready", "auth", "writes:ready", "", {}),
        ("[auth] writes:blocked reason=refresh_timeout", "auth", "writes:blocked", "refresh_timeout",
         {"reason": "refresh_timeout"}),
        ("[sync] merged count=12", "sync", "merged", "", {"count": "12"}),
        ("[sync] start group=7f0c9d since=42", "sync", "start", "", {"group": "7f0c9d", "since": "42"}),
        ("[outbox] drain start count=3", "outbox", "drain start", "", {"count": "3"}),
        ("[outbox] deferred reason=auth_refresh", "outbox", "deferred", "auth_refresh", {"reason": "auth_refresh"}),
        ("[push] token:registered ios abc123…", "push", "token:registered", "",
         {"platform": "ios", "token_prefix": "abc123…"}),
        ("[push] notify:fanout group=9 recipients=4", "push", "notify:fanout", "", {"group": "9", "recipients": "4"}),
    ],
)  # fmt: skip
def test_each_seed_tag_parses_into_its_fields(message, tag, action, reason, fields):
    parsed = parse_log_line(message)
    assert (parsed.tag, parsed.action, parsed.reason, parsed.fields) == (tag, action, reason, fields)
    assert parsed.message is None  # stored as sent


def test_a_full_token_in_a_registration_line_is_truncated_in_fields_and_message():
    token = "fcmTOKENabcdefghijklmnopqrstuvwxyz0123456789"
    parsed = parse_log_line(f"[push] token:registered android {token}")
    assert parsed.fields == {"platform": "android", "token_prefix": "fcmTOK…"}
    assert parsed.message == "[push] token:registered android fcmTOK…"
    assert token not in parsed.fields_json


def test_quoted_values_and_unknown_tags_parse_generically():
    parsed = parse_log_line('[Media] upload:failed reason="disk full" size=10')
    assert (parsed.tag, parsed.action, parsed.reason) == ("media", "upload:failed", "disk full")
    assert parsed.fields == {"reason": "disk full", "size": "10"}


@pytest.mark.parametrize("message", ["", "app resumed", "[] nothing", "[unterminated push", "   "])
def test_untagged_lines_have_no_tag(message):
    parsed = parse_log_line(message)
    assert (parsed.tag, parsed.action, parsed.reason, parsed.fields) == ("", "", "", {})
