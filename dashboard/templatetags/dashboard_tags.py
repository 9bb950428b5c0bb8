"""Template filters for the dashboard."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter(name="as_json")
def as_json(value: Any) -> str:
    """Flag values as the API and the edit form spell them (true, [1500, 3000]), not Python's True."""
    return json.dumps(value, default=str)


@register.filter(name="change_value")
def change_value(change: Any) -> Any:
    """A FlagChange's old/new is {"value": ..., "rules": ...}; None before the first change."""
    if isinstance(change, dict) and "value" in change:
        return json.dumps(change["value"], default=str)
    return "—" if change is None else json.dumps(change, default=str)


@register.filter(name="words")
def words(value: Any) -> str:
    """push_wakes -> push wakes"""
    return str(value).replace("_", " ")
