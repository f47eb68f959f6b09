"""Exceptions the runtime maps onto dramatiq (see ``retry_policy``)."""

from __future__ import annotations

__all__ = ["InvalidEvent", "UnauthenticatedEvent"]


class InvalidEvent(Exception):  # noqa: N818 - reads as what it is
    """An event failed the contract (or reused an id): dead-lettered at once with the reason, never retried."""

    def __init__(self, field: str, reason: str, event_id: str | None) -> None:
        super().__init__(f"invalid event {event_id or '?'}: {field}: {reason}")
        self.field = field
        self.reason = reason
        self.event_id = event_id


class UnauthenticatedEvent(InvalidEvent):
    """An event message without a valid proof of an authenticated publisher (``worker.event_proof``): refused
    before anything is written about its customer, dead-lettered at once with the reason, never retried."""

    def __init__(self, reason: str, event_id: str | None) -> None:
        Exception.__init__(self, f"unauthenticated event {event_id or '?'}: {reason}")
        self.field = "$proof"
        self.reason = reason
        self.event_id = event_id
