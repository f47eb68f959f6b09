"""Intake: the door every event passes, at publish time and again in the worker.

``Intake.check`` validates an event against the contract (no I/O but the clock). ``Intake.accept`` also stores
it for its customer — unless it is a duplicate (fine), reuses an id with other content (refused) or arrives
after the customer was closed (ignored and reported) — and seals KYC documents before they touch Redis.
Refusals are recorded (reason, no payload) and reported to the upstream on the outbound stream, under a
deterministic id (the same refusal of the same input always has the same id) and, when the refused event names
a customer we hold, in that customer's outbound sequence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from handlers.erasure import is_copy_of_erased
from handlers.events import MAX_PHOTO_BYTES, Event, EventRejected, IntakePolicy, KycApproved, parse_event
from handlers.naming import Naming
from worker.crypto import Keyring
from worker.store.customers import CustomerStore, IngestResult, Taken, stored_form
from worker.store.lock import CustomerLock
from worker.store.outbound import OutboundEvent, rfc3339
from worker.store.refusal_counts import count_field

__all__ = ["CLOSED_REASON", "Accepted", "Intake", "Refused", "peek_event_id", "readable_ids", "refusal_event"]

CLOSED_REASON = "the customer was offboarded and closed; event ignored"

_CUSTOMER_ID = re.compile(r"[A-Za-z0-9._:@+/=-]{1,64}")
"""A customer id as the contract allows it (``handlers.events.CustomerId``): read from a refused event only then."""


@dataclass(frozen=True)
class Accepted:
    event: Event
    ref: str
    result: IngestResult
    taken: Taken | None = None
    """The customer's lock, asked for in the script that stored the event when ``accept`` was given ``lock``: hand
    it to ``Reconciler.run``, which must run next (the lock is held until then, or until its time-to-live)."""


@dataclass(frozen=True)
class Refused:
    """Why an event was not taken: ``field`` names the offending field (``$`` for the whole event)."""

    field: str
    reason: str
    event_id: str | None = None
    ref: str | None = None
    ignored: bool = False
    """True for a valid event that arrived after its customer was closed."""
    customer_id: str | None = None
    """The upstream's customer id, when the refused event names one that the contract allows."""
    digest: str = ""
    """A keyed digest of the refused input, for the refusal's id when the event has no readable id."""
    conflict: bool = False
    """True for a valid event whose id was already used for other content (or other KYC documents)."""

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
        max_photo_bytes: int = MAX_PHOTO_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._naming = naming
        self._keyring = keyring
        self._currencies = currencies
        self._max_photo_bytes = max_photo_bytes
        self._clock = clock

    def policy(self) -> IntakePolicy:
        return IntakePolicy(
            now=datetime.fromtimestamp(self._clock(), tz=UTC),
            currencies=self._currencies,
            max_photo_bytes=self._max_photo_bytes,
        )

    def check(self, raw: str | bytes | dict[str, Any]) -> Event | Refused:
        """Validate without storing. Returns the event, or a ``Refused`` naming the field.

        A copy of an event already stored under its id is judged as it was when it was accepted: the checks that
        depend on the moment (its age, the clocks, the configured currencies, the photo limit) no longer apply to
        it — were it refused now, the upstream would be told ``event.refused`` (final) for an event that took
        effect. It is returned if it is well-formed, and intake then answers duplicate or conflict. Raises
        ``redis.RedisError`` (only for such a refused copy, where what is stored is looked up)."""
        try:
            return parse_event(raw, self.policy())
        except EventRejected as exc:
            event_id, customer_id = _readable(raw)
            if event_id and customer_id and self._store.holds_event(self._naming.customer_ref(customer_id), event_id):
                with contextlib.suppress(EventRejected):
                    return parse_event(raw, None)
            return Refused(
                exc.field,
                exc.reason,
                event_id=event_id,
                ref=self._naming.customer_ref(customer_id) if customer_id else None,
                customer_id=customer_id,
                digest="" if event_id else self._naming.refusal_digest(_canonical(raw)),
            )

    def accept(
        self,
        raw: str | bytes | dict[str, Any],
        *,
        handoff_id: str = "",
        handoff_queue: str = "",
        lock: Callable[[str], tuple[CustomerLock, int]] | None = None,
    ) -> Accepted | Refused:
        """Validate and store. A refusal is recorded and reported before it is returned. ``handoff_id`` and
        ``handoff_queue``: the message that carried the event, forgotten by the hand-off once it is stored.
        ``lock`` (``Reconciler.lock_for``: the customer's lock and its busy wake-up, given its ref): the event's
        reconcile follows at once, so its lock is taken and its snapshot read in the script that stores the event
        (``CustomerStore.ingest_and_lock``; ``Accepted.taken``)."""
        checked = self.check(raw)
        if isinstance(checked, Refused):
            checked = self.refuse(raw, checked)
            if isinstance(checked, Refused):
                return checked
        event = checked
        ref = self._naming.customer_ref(event.customer_id)
        sealed = None
        digest = ""
        if isinstance(event, KycApproved) and event.data.kyc is not None:
            documents = event.data.kyc.model_dump(mode="json")
            sealed = self._keyring.seal(documents)
            digest = self._naming.documents_digest(json.dumps(documents, sort_keys=True, separators=(",", ":")))
        taken = None
        if lock is None:
            result = self._store.ingest(
                ref,
                event,
                sealed_documents=sealed,
                now_ms=self._now_ms(),
                handoff_id=handoff_id,
                handoff_queue=handoff_queue,
                documents_digest=digest,
            )
        else:
            customer_lock, busy_wake_at_ms = lock(ref)
            result, taken = self._store.ingest_and_lock(
                ref,
                event,
                lock=customer_lock,
                busy_wake_at_ms=busy_wake_at_ms,
                sealed_documents=sealed,
                now_ms=self._now_ms(),
                handoff_id=handoff_id,
                handoff_queue=handoff_queue,
                documents_digest=digest,
            )
        if result in (IngestResult.CONFLICT, IngestResult.CONFLICT_DOCUMENTS) and self._copy_of_erased(ref, event):
            return Accepted(event, ref, IngestResult.DUPLICATE)  # nothing to reconcile: the customer is closed
        if result is IngestResult.CONFLICT:
            refused = Refused(
                "id",
                "event id already used for an event with different content",
                event.id,
                ref,
                customer_id=event.customer_id,
                conflict=True,
            )
            self.report(refused)
            return refused
        if result is IngestResult.CONFLICT_DOCUMENTS:
            refused = Refused(
                "id",
                "event id already used with other KYC documents (or none): send corrected documents as a new "
                "customer.kyc_approved event with its own id",
                event.id,
                ref,
                customer_id=event.customer_id,
                conflict=True,
            )
            self.report(refused)
            return refused
        if result is IngestResult.REFUSED:
            field_path, reason = self._store.refusal(ref, event.id) or ("id", "refused earlier")
            refused = Refused(field_path, reason, event.id, ref, customer_id=event.customer_id)
            self.report(refused)  # the same refusal, under the same outbound id: the upstream takes it once
            return refused
        if result is IngestResult.CLOSED:
            ignored = Refused(
                "customer_id",
                CLOSED_REASON,
                event.id,
                ref,
                ignored=True,
                customer_id=event.customer_id,
            )
            self.report(ignored)
            return ignored
        return Accepted(event, ref, result, taken)

    def refuse(self, raw: str | bytes | dict[str, Any], refused: Refused, *, stage: str = "worker") -> Event | Refused:
        """What becomes of ``raw``, which ``check`` refused: the refusal, told (final for the id) — unless a copy of
        the event was stored meanwhile (another worker took it), when this one is judged as a copy: the event
        (intake answers duplicate or conflict), or, malformed even as a copy, a refusal told as a conflict (the
        stored event answers for the id, so it is not final). Raises ``redis.RedisError``, ``NamingMismatch``."""
        if self.report(refused, stage=stage):
            return refused
        again = self.check(raw)
        if isinstance(again, Refused):
            # the stored event answers for the id: told as a conflict of the id (as every conflict is), never as a
            # refusal of the event, which took effect
            again = dataclasses.replace(
                again,
                field="id",
                reason=f"event id already used for an event with other content (this copy: {again.field}: "
                f"{again.reason})",
                conflict=True,
            )
            self.report(again, stage=stage)
        return again

    def report(self, refused: Refused, *, stage: str = "worker") -> bool:
        """Record a refusal (reason, no payload), count it for ``stage`` (``worker.store.refusal_counts``) and tell
        the upstream on the outbound stream (``event.refused``, or ``event.ignored`` for an event that reached a
        closed customer). Returns False, telling nothing, when the refused event was stored meanwhile (a copy
        another worker took: it is a duplicate now, see ``check``). Raises ``redis.RedisError``."""
        now = self._now_ms()
        told = self._store.record_refusal(
            event_id=refused.event_id,
            ref=refused.ref,
            reason=refused.reason,
            field_path=refused.field,
            now_ms=now,
            counted_as=count_field(stage, refused.field, conflict=refused.conflict, ignored=refused.ignored),
            # told as the end of that event id: a later copy (a replayed dead letter, a re-send once the cause is
            # gone, say a currency added since) must not take effect after the upstream booked it refused
            final=not (refused.conflict or refused.ignored),
        )
        if told:
            self._store.report(refusal_event(refused, now), ref=refused.ref)
        return told

    def _copy_of_erased(self, ref: str, event: Event) -> bool:
        """Whether ``event``, which its stored id's content contradicts, is a copy of an event of an erased customer
        (its stored form pseudonymised since: ``handlers.erasure.is_copy_of_erased``). Raises ``redis.RedisError``."""
        stored = self._store.stored_event(ref, event.id)
        return stored is not None and is_copy_of_erased(stored, stored_form(event), ref)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def refusal_event(refused: Refused, now_ms: int) -> OutboundEvent:
    """The outbound report of a refusal. Its id is deterministic: ``event.ignored:<customer ref>:<event id>`` (an
    event reaches a closed customer once, whatever the copies), ``event.refused:<event id>:<digest of customer id,
    field and reason>`` (the same refusal of the same event id from the same customer: event ids are chosen per
    customer, so two customers' refusals never share an id), or ``event.refused:~<digest of the input>`` for input
    with no readable id."""
    if refused.ignored:
        kind, identity = "event.ignored", f"{refused.ref}:{refused.event_id}"
    elif refused.event_id:
        customer = refused.customer_id or ""
        kind, identity = "event.refused", f"{refused.event_id}:{_short_digest(customer, refused.field, refused.reason)}"
    else:
        kind, identity = "event.refused", f"~{refused.digest}"
    return OutboundEvent(
        id=f"{kind}:{identity}",
        type=kind,
        payload={
            "customer_id": refused.customer_id,
            "customer_ref": refused.ref,
            "occurred_at": rfc3339(now_ms),
            "event_id": refused.event_id,
            "field": refused.field,
            "reason": refused.reason,
        },
    )


def _short_digest(*parts: str) -> str:
    """A short digest of public text (a refusal's field and reason), to tell refusals of one event id apart."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:12]


def _canonical(raw: object) -> str:
    """The refused input as text (a mapping in canonical JSON), for its digest."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        return raw
    try:
        return json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    except (ValueError, RecursionError):
        return repr(raw)


def readable_ids(raw: object) -> tuple[str | None, str | None]:
    """The event id and customer id of an event, where they can be read safely (short, printable)."""
    return _readable(raw)


def peek_event_id(raw: object) -> str | None:
    """The event's id, if one can be read safely from a refused event (short, printable), for the report."""
    return _readable(raw)[0]


def _readable(raw: object) -> tuple[str | None, str | None]:
    """The event id and customer id, where they can be read safely from a refused event (short, printable; the
    customer id as the contract allows it), for the report."""
    obj = raw
    if isinstance(raw, str | bytes) and len(raw) < 20_000_000:
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            return None, None
    if not isinstance(obj, dict):
        return None, None
    value = obj.get("id")
    event_id = value if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable() else None
    customer = obj.get("customer_id")
    customer_id = customer if isinstance(customer, str) and _CUSTOMER_ID.fullmatch(customer) else None
    return event_id, customer_id
