"""Intake: the door every event passes, at publish time and again in the worker.

``Intake.check`` validates an event against the contract (no I/O but the clock). ``Intake.accept`` also stores
it for its customer — unless it is a duplicate (fine), reuses an id with other content (refused) or arrives
after the customer was closed (ignored and reported) — and seals KYC documents before they touch Redis.
Refusals are recorded (reason, no payload) and reported to the upstream on the outbound stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from handlers.events import Event, EventRejected, IntakePolicy, KycApproved, parse_event
from handlers.naming import Naming
from worker.crypto import Keyring
from worker.store.customers import CustomerStore, IngestResult, OutboundEvent

__all__ = ["Accepted", "Intake", "Refused", "peek_event_id"]


@dataclass(frozen=True)
class Accepted:
    event: Event
    ref: str
    result: IngestResult


@dataclass(frozen=True)
class Refused:
    """Why an event was not taken: ``field`` names the offending field (``$`` for the whole event)."""

    field: str
    reason: str
    event_id: str | None = None
    ref: str | None = None
    ignored: bool = False
    """True for a valid event that arrived after its customer was closed."""

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class Intake:
    def __init__(
        self,
        store: CustomerStore,
        naming: Naming,
        keyring: Keyring,
        *,
        currencies: frozenset[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._naming = naming
        self._keyring = keyring
        self._currencies = currencies
        self._clock = clock

    def policy(self) -> IntakePolicy:
        return IntakePolicy(now=datetime.fromtimestamp(self._clock(), tz=UTC), currencies=self._currencies)

    def check(self, raw: str | bytes | dict[str, Any]) -> Event | Refused:
        """Validate without storing. Returns the event, or a ``Refused`` naming the field."""
        try:
            return parse_event(raw, self.policy())
        except EventRejected as exc:
            return Refused(exc.field, exc.reason, event_id=peek_event_id(raw))

    def accept(
        self, raw: str | bytes | dict[str, Any], *, handoff_id: str = "", handoff_queue: str = ""
    ) -> Accepted | Refused:
        """Validate and store. A refusal is recorded and reported before it is returned. ``handoff_id`` and
        ``handoff_queue``: the message that carried the event, forgotten by the hand-off once it is stored."""
        checked = self.check(raw)
        if isinstance(checked, Refused):
            self.report(checked)
            return checked
        event = checked
        ref = self._naming.customer_ref(event.customer_id)
        sealed = None
        digest = ""
        if isinstance(event, KycApproved) and event.data.kyc is not None:
            documents = event.data.kyc.model_dump(mode="json")
            sealed = self._keyring.seal(documents)
            digest = self._naming.documents_digest(json.dumps(documents, sort_keys=True, separators=(",", ":")))
        result = self._store.ingest(
            ref,
            event,
            sealed_documents=sealed,
            now_ms=self._now_ms(),
            handoff_id=handoff_id,
            handoff_queue=handoff_queue,
            documents_digest=digest,
        )
        if result is IngestResult.CONFLICT:
            refused = Refused("id", "event id already used for an event with different content", event.id, ref)
            self.report(refused)
            return refused
        if result is IngestResult.CONFLICT_DOCUMENTS:
            refused = Refused(
                "id",
                "event id already used with other KYC documents (or none): send corrected documents as a new "
                "customer.kyc_approved event with its own id",
                event.id,
                ref,
            )
            self.report(refused)
            return refused
        if result is IngestResult.CLOSED:
            ignored = Refused(
                "customer_id", "the customer was offboarded and closed; event ignored", event.id, ref, ignored=True
            )
            self.report(ignored)
            return ignored
        return Accepted(event, ref, result)

    def report(self, refused: Refused) -> None:
        """Record a refusal (reason, no payload) and tell the upstream on the outbound stream."""
        now = self._now_ms()
        self._store.record_refusal(
            event_id=refused.event_id, ref=refused.ref, reason=refused.reason, field_path=refused.field, now_ms=now
        )
        kind = "event.ignored" if refused.ignored else "event.refused"
        event = OutboundEvent(
            id=f"{kind}:{refused.event_id or now}",
            type=kind,
            payload={
                "event_id": refused.event_id,
                "customer_ref": refused.ref,
                "field": refused.field,
                "reason": refused.reason,
                "occurred_at": datetime.fromtimestamp(now / 1000, tz=UTC).isoformat(),
            },
        )
        self._store.redis.xadd(
            self._store.keys.outbound,
            {"id": event.id, "type": event.type, "event": event.to_json()},
        )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def peek_event_id(raw: object) -> str | None:
    """The event's id, if one can be read safely from a refused event (short, printable), for the report."""
    obj = raw
    if isinstance(raw, str | bytes) and len(raw) < 20_000_000:
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            return None
    if not isinstance(obj, dict):
        return None
    value = obj.get("id")
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
        return value
    return None
