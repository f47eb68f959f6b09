"""Making text that came from input safe to repeat: refusal reasons and field paths reach logs, the refused
stream, the outbound stream, dead letters and the terminal, so they are printable ASCII and bounded."""

from __future__ import annotations

import re

__all__ = ["MAX_FIELD_PART", "MAX_REASON", "field_part", "printable"]

MAX_REASON = 400
"""The longest refusal reason, in characters, once escaped."""
MAX_FIELD_PART = 40
"""The longest part of a field path (one field name), in characters, once escaped."""
_NAME = re.compile(r"[A-Za-z0-9_]{1,40}")


def printable(text: str, limit: int) -> str:
    """``text`` with every character outside printable ASCII written as its Python escape (``\\n``, ``\\u202e``),
    cut to ``limit`` characters (ending in ``...`` when cut)."""
    escaped = "".join(c if " " <= c <= "~" else ascii(c)[1:-1] for c in text[: limit + 1])
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def field_part(part: str) -> str:
    """One part of a field path as it may be repeated: a plain field name or list index unchanged, anything else
    (a key from the input) escaped and bounded to ``MAX_FIELD_PART``."""
    return part if _NAME.fullmatch(part) else printable(part, MAX_FIELD_PART)
