"""Values as an operator reads them: lists as comma-separated words, mappings as ``key=value``, epoch
milliseconds as UTC times, never a Python repr."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["field", "text", "when"]

_EPOCH_MS_FLOOR = 10**12
"""An ``*_ms`` value at least this large (2001-09-09) is a moment; a smaller one is a duration or a count."""


def when(ms: int | None) -> str:
    """``ms`` (epoch milliseconds) as ``YYYY-MM-DD HH:MM:SSZ`` in UTC; ``""`` for ``None`` or 0."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ms else ""


def text(value: Any) -> str:
    """``value`` for a human: ``none`` for nothing, ``yes``/``no``, lists joined by commas, mappings as
    ``key=value`` pairs (their ``*_ms`` moments as UTC times), anything else as ``str``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={field(str(k), v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(text(v) for v in value) or "none"
    return str(value)


def field(key: str, value: Any) -> str:
    """``value`` of a field named ``key``: an ``*_ms`` moment as a UTC time, anything else as ``text``."""
    if key.endswith("_ms") and isinstance(value, int) and not isinstance(value, bool) and value >= _EPOCH_MS_FLOOR:
        return when(value)
    return text(value)
