"""How a refused event is told: ``EventRejected`` with the field's path and a reason, both safe to repeat.

Pydantic's errors are translated here into reasons a publisher can act on; whatever part of them came from the
input (an unknown field's name, a bad value) is escaped to printable ASCII and bounded (``handlers.printable``),
because refusals reach logs, the refused and outbound streams, dead letters and terminals.
"""

from __future__ import annotations

from typing import Any

from handlers.printable import MAX_FIELD_PART, MAX_REASON, field_part, printable

__all__ = ["EventRejected", "rejection", "require_utf8"]


class EventRejected(ValueError):  # noqa: N818 - a verdict, read as "event rejected"
    """An event was refused. ``field`` is the path of the offending field (``data.funding.0.amount``); both it and
    ``reason`` are printable ASCII and bounded (``handlers.printable``): they may repeat input."""

    def __init__(self, field: str, reason: str) -> None:
        field, reason = printable(field, 4 * MAX_FIELD_PART), printable(reason, MAX_REASON)
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def require_utf8(text: bytes) -> None:
    """Raise ``EventRejected`` naming the first byte that is not UTF-8 (JSON text is UTF-8, RFC 8259 §8.1)."""
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = text[exc.start]
        raise EventRejected("$", f"not valid UTF-8: byte 0x{byte:02X} at column {exc.start + 1}") from None


_PATTERN_HELP = {
    "id": "must be 1-64 characters from A-Z a-z 0-9 . _ : -",
    "customer_id": "must be 1-64 characters from A-Z a-z 0-9 . _ : @ + / = -",
    "currency": "must be 2-16 upper-case letters or digits",
    "issue_country": "must be an ISO 3166 alpha-2 country code",
    "birth_date": "must be a date YYYY-MM-DD",
    "expire_date": "must be a date YYYY-MM-DD",
    "front_photo": "must be a data:image/png or data:image/jpeg base64 URI",
    "backend_photo": "must be a data:image/png or data:image/jpeg base64 URI",
    "face_photo": "must be a data:image/png or data:image/jpeg base64 URI",
}


def rejection(err: Any, tags: frozenset[str]) -> EventRejected:
    """The refusal for pydantic's first error ``err``: the field's path (event type tags left out) and a reason a
    publisher can act on."""
    loc = [field_part(str(p)) for p in err["loc"] if str(p) not in tags]
    field = ".".join(loc) or "$"
    kind = err.get("type", "")
    if kind == "json_invalid":
        return EventRejected("$", f"not valid JSON: {err.get('ctx', {}).get('error', 'syntax error')}")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return EventRejected("type", "unknown or missing event type; expected one of " + ", ".join(sorted(tags)))
    if kind == "model_type" or (kind == "model_attributes_type" and not loc):
        return EventRejected(field, "must be a JSON object")
    if kind == "extra_forbidden":
        return EventRejected(field, "unknown field")
    if kind == "missing":
        return EventRejected(field, "required field is missing")
    if kind == "string_pattern_mismatch" and loc and loc[-1] in _PATTERN_HELP:
        return EventRejected(field, _PATTERN_HELP[loc[-1]])
    if loc and loc[-1] == "amount" and kind == "string_type":
        return EventRejected(field, 'must be a decimal string such as "250.5", not a JSON number')
    return EventRejected(field, str(err.get("msg", "invalid")).removeprefix("Value error, "))
