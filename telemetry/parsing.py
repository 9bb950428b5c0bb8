"""Parse the clients' tagged log lines (seeds 000/004) into tag, action, reason and fields.

Grammar, as the clients write it: ``[tag] action words key=value key="quoted value" ...``
(``[push] wake reason=data``, ``[outbox] drain start count=3``, ``[auth] writes:blocked reason=refresh_timeout``).
Positional arguments exist only for ``[push] token:registered <platform> <token>``; the token is kept
truncated (6 chars + '…') in the fields *and* in the stored message, so a full token never lands anywhere.

Log lines are low-cardinality (a handful of tags, a few reasons), so parses are memoised.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

from pushes.models import truncate_token

TAG_MAX, ACTION_MAX, REASON_MAX, FIELD_MAX = 32, 64, 64, 200

_LINE = re.compile(r"^\s*\[([A-Za-z0-9_.:-]{1,32})\]\s*(.*)$", re.DOTALL)
# key=value | key="value with spaces" | bare word
_TOKEN = re.compile(r'([A-Za-z_][A-Za-z0-9_.-]*)=(?:"((?:[^"\\]|\\.)*)"|(\S*))|(\S+)')

# Which field is the counter's "reason" dimension, in order of preference: the seeds' reason=,
# the realtime rebuild's status=, and the degraded step's backoff= (so backoff steps are countable).
_REASON_KEYS = ("reason", "status", "backoff")

# Actions whose trailing bare words are positional arguments rather than more words of the action.
_POSITIONAL = {("push", "token:registered"): ("platform", "token")}


@dataclass(frozen=True)
class ParsedLine:
    tag: str = ""
    action: str = ""
    reason: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    # The message as it may be stored (differs from the input only when a token had to be truncated).
    message: str | None = None
    fields_json: str = "{}"  # serialised once per distinct line (the parse is memoised)
    # "tag<TAB>action<TAB>reason<TAB>fields" escaped for COPY's text format, also built once per distinct line.
    copy_columns: str = "\t\t\t{}"


UNTAGGED = ParsedLine()


def parse_log_line(message: str) -> ParsedLine:
    """``"[push] wake reason=data"`` -> tag "push", action "wake", reason "data", fields {"reason": "data"}."""
    if "[" not in message[:8]:  # fast path: most untagged lines never reach the regex
        return UNTAGGED
    return _parse_cached(message) if len(message) <= 512 else _parse(message)


@lru_cache(maxsize=8192)
def _parse_cached(message: str) -> ParsedLine:
    return _parse(message)


def _parse(message: str) -> ParsedLine:
    match = _LINE.match(message)
    if match is None:
        return UNTAGGED
    tag = match.group(1).lower()
    words: list[str] = []
    fields: dict[str, str] = {}
    seen_key = False
    for key, quoted, bare_value, word in _TOKEN.findall(match.group(2)):
        if key:
            seen_key = True
            value = quoted.replace('\\"', '"') if quoted else bare_value
            fields[key.lower()[:FIELD_MAX]] = value[:FIELD_MAX]
        elif not seen_key:
            words.append(word)
    action = words[0] if words else ""
    rest = words[1:]
    stored_message = None
    positional = _POSITIONAL.get((tag, action))
    if positional:
        for name, value in zip(positional, rest, strict=False):
            fields[name] = value[:FIELD_MAX]
        if "token" in fields:
            token = fields.pop("token")
            fields["token_prefix"] = truncate_token(token.rstrip("…"))
            if len(token.rstrip("…")) > 6:  # a full token was logged: never store it
                stored_message = " ".join([f"[{match.group(1)}]", action, *rest[:1], fields["token_prefix"]])
    elif rest:
        action = " ".join(words)  # e.g. "[outbox] drain start count=3" -> action "drain start"
    action = action[:ACTION_MAX]
    reason = next((fields[k] for k in _REASON_KEYS if fields.get(k)), "")[:REASON_MAX]
    fields_json = json.dumps(fields, ensure_ascii=False)
    return ParsedLine(
        tag=tag,
        action=action,
        reason=reason,
        fields=fields,
        message=stored_message,
        fields_json=fields_json,
        copy_columns="\t".join(copy_text(v) for v in (tag, action, reason, fields_json)),
    )


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    """A value escaped for PostgreSQL COPY's text format (most values need nothing: one regex probe)."""
    return value if _COPY_SPECIAL.search(value) is None else value.translate(_COPY_ESCAPES)
