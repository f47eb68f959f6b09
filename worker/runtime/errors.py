"""Exceptions the runtime maps onto dramatiq (see ``retry_policy``)."""

from __future__ import annotations

__all__ = ["InvalidEvent", "ReplayFoundCustomerBusy", "UnauthenticatedEvent"]


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


class ReplayFoundCustomerBusy(Exception):  # noqa: N818 - reads as what happened
    """An operator's replay (``provisioner dlq replay``) found its customer's lock held by another run. The retry of
    blocked steps is this message's own (its verified replay mark), and the run holding the lock is no operator's
    retry: the message is retried with back-off like a retryable failure (it keeps its mark), and dead-lettered
    again — so the operator sees it — if the customer stays busy through every retry."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"an operator's replay found customer {ref} busy: retried once its run ends")
        self.ref = ref
