"""Input validators shared by the API serializers."""

from __future__ import annotations

from rest_framework import serializers


def storable_unicode(value: str) -> str:
    """JSON can carry a lone surrogate ("\\ud800"); PostgreSQL (UTF-8) cannot store it: bad input, not a 500.

    (NUL is refused by DRF's CharField itself.)
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise serializers.ValidationError("Contains characters that are not valid Unicode.") from exc
    return value
