"""Flag value validation and targeting rules (pure functions: no database, no cache).

A rule is ``{"platform"?: "android"|"ios", "min_app_version"?: "1.10.0", "percentage"?: 0-100, "value": X}``.
Every condition present must hold; the first matching rule's value wins, otherwise the flag's value.
A rule needs at least one condition. ``percentage`` puts a user in when
``bucket(flag key, user id) < percentage``: buckets are a stable hash, so a user who is in at 10 %
stays in at 20 % (ramping up only adds users), and different flags bucket users independently.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

PLATFORMS = ("android", "ios")
RULE_KEYS = {"platform", "min_app_version", "percentage", "value"}
MAX_RULES = 20
MAX_VERSION_LENGTH = 64


def parse_version(text: Any) -> Version | None:
    """A PEP 440 version (1.10.0 > 1.9.2; 2.0.0-beta.1 < 2.0.0), or None when ``text`` is not one."""
    if isinstance(text, Version):
        return text
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_VERSION_LENGTH:
        return None
    try:
        return Version(text.strip())
    except InvalidVersion:
        return None


def percentage_bucket(flag_key: str, user_id: Any) -> int:
    """0-99, stable for (flag, user) across processes and restarts (not Python's salted hash())."""
    digest = hashlib.sha256(f"{flag_key}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


# --- validation ---------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def value_errors(flag_type: str, schema: dict, value: Any) -> list[str]:
    """Why ``value`` is not acceptable for a flag of this type/schema ([] when it is)."""
    if flag_type == "bool":
        return [] if isinstance(value, bool) else [f"Expected true or false, got {_describe(value)}."]
    if flag_type == "int":
        if not _is_int(value):
            return [f"Expected an integer, got {_describe(value)}."]
        return _range_errors(value, schema.get("min"), schema.get("max"))
    if flag_type == "float":
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            return [f"Expected a number, got {_describe(value)}."]
        return _range_errors(value, schema.get("min"), schema.get("max"))
    if flag_type == "json":
        if schema.get("list_of") == "int":
            return _int_list_errors(value, schema)
        return []
    return [f"Unknown flag type {flag_type!r}."]


def _range_errors(value: float, lo: float | None, hi: float | None) -> list[str]:
    if lo is not None and hi is not None and not lo <= value <= hi:
        return [f"Must be between {lo} and {hi}; got {value}."]
    if lo is not None and value < lo:
        return [f"Must be at least {lo}; got {value}."]
    if hi is not None and value > hi:
        return [f"Must be at most {hi}; got {value}."]
    return []


def _int_list_errors(value: Any, schema: dict) -> list[str]:
    if not isinstance(value, list) or not all(_is_int(v) for v in value):
        return [f"Expected a list of integers, got {_describe(value)}."]
    lo_len, hi_len = schema.get("min_len", 0), schema.get("max_len")
    if len(value) < lo_len or (hi_len is not None and len(value) > hi_len):
        return [f"Must have {lo_len} to {hi_len} items; got {len(value)}."]
    for item in value:
        errors = _range_errors(item, schema.get("item_min"), schema.get("item_max"))
        if errors:
            return [f"Every item: {errors[0][0].lower()}{errors[0][1:]}"]
    if schema.get("ascending") and any(b <= a for a, b in zip(value, value[1:], strict=False)):
        return ["Items must be in strictly ascending order."]
    return []


def _describe(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


def rules_errors(flag_type: str, schema: dict, rules: Any) -> list[str]:
    """Why ``rules`` is not an acceptable rule list for this flag ([] when it is)."""
    if not isinstance(rules, list):
        return ["Rules must be a list."]
    if rules and schema.get("global"):
        return ["This flag is global: it takes no targeting rules."]
    if len(rules) > MAX_RULES:
        return [f"At most {MAX_RULES} rules."]
    errors: list[str] = []
    for n, rule in enumerate(rules, 1):
        errors.extend(f"Rule {n}: {e}" for e in _rule_errors(flag_type, schema, rule))
    return errors


def _rule_errors(flag_type: str, schema: dict, rule: Any) -> list[str]:
    if not isinstance(rule, dict):
        return ["must be an object."]
    errors = []
    unknown = set(rule) - RULE_KEYS
    if unknown:
        errors.append(f"unknown keys {sorted(unknown)}; allowed: {sorted(RULE_KEYS)}.")
    if "value" not in rule:
        errors.append("needs a value.")
    else:
        errors.extend(value_errors(flag_type, schema, rule["value"]))
    if not (set(rule) & {"platform", "min_app_version", "percentage"}):
        errors.append("needs at least one condition: platform, min_app_version or percentage.")
    if "platform" in rule and rule["platform"] not in PLATFORMS:
        errors.append(f"platform must be one of {list(PLATFORMS)}.")
    if "min_app_version" in rule and parse_version(rule["min_app_version"]) is None:
        errors.append("min_app_version must be a version such as 1.10.0.")
    if "percentage" in rule and not (_is_int(rule["percentage"]) and 0 <= rule["percentage"] <= 100):
        errors.append("percentage must be an integer from 0 to 100.")
    return errors


# --- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledRule:
    value: Any
    platform: str | None = None
    min_version: Version | None = None
    percentage: int | None = None

    def matches(self, flag_key: str, user_id: Any, platform: str | None, version: Version | None) -> bool:
        if self.platform is not None and platform != self.platform:
            return False
        if self.min_version is not None and (version is None or version < self.min_version):
            return False
        if self.percentage is not None:
            # Anonymous callers have no stable bucket: only a 100 % rule takes them in.
            if user_id is None:
                return self.percentage >= 100
            if percentage_bucket(flag_key, user_id) >= self.percentage:
                return False
        return True


def compile_rules(rules: list[dict]) -> tuple[CompiledRule, ...]:
    """Parse versions once per cache load, not once per evaluation."""
    return tuple(
        CompiledRule(
            value=r["value"],
            platform=r.get("platform"),
            min_version=parse_version(r["min_app_version"]) if "min_app_version" in r else None,
            percentage=r.get("percentage"),
        )
        for r in rules
    )
