"""The actors. Thin: validate and store the event, then reconcile its customer; everything else is elsewhere.

Queues, and why three: ``urgent`` carries offboarding (revocations, money back) so it never waits behind a
campaign's backlog of sign-ups in ``events``; ``reconcile`` carries scheduled follow-ups (grace ends, settle
waits, KYC checks, rate-limit waits, customers found busy). Each queue has its own consumer and prefetch in
every worker process, so a long ``events`` queue cannot starve the other two.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import dramatiq
import structlog
from dramatiq.common import q_name
from dramatiq.middleware import CurrentMessage

from handlers.events import EventType
from handlers.printable import printable
from handlers.records import SealedSecret
from worker.crypto import CryptoError
from worker.event_proof import PROOF_OPTION, REPLAY_PROOF_OPTION, EventProofs, replay_claim
from worker.intake import Refused, peek_event_id
from worker.provisioning.reconciler import Reconciler, StepsBlocked
from worker.runtime.errors import InvalidEvent, ReplayFoundCustomerBusy, UnauthenticatedEvent
from worker.runtime.holder import AppHolder
from worker.runtime.metrics import Metrics, field_label
from worker.runtime.queues import QUEUE_EVENTS, QUEUE_RECONCILE, QUEUE_URGENT
from worker.runtime.retry_policy import DEAD_AT_ONCE, RetryPolicy
from worker.runtime.state_watch import StateWatch
from worker.sealing import Envelope
from worker.store.customers import Taken
from worker.store.epoch import StateLost

__all__ = [
    "ACTOR_EVENT",
    "ACTOR_URGENT_EVENT",
    "ENVELOPE",
    "QUEUE_EVENTS",
    "QUEUE_RECONCILE",
    "QUEUE_URGENT",
    "SEALED",
    "Actors",
    "actor_for",
    "declare_actors",
    "queue_for",
]

ACTOR_EVENT = "handle_event"
ACTOR_URGENT_EVENT = "handle_urgent_event"
SEALED = "$sealed"
"""Marks KYC documents sealed with the Fernet keyring before enqueueing (what the publisher did before the edge
sealed to the intake key; still opened, for messages sent before the upgrade and their dead letters)."""
ENVELOPE = "$envelope"
"""Marks KYC documents sealed at the edge to the worker's intake key (``worker.sealing.Envelope``): they never sit
in Redis in the clear, and nothing but the worker opens them."""

_log = structlog.get_logger(__name__)
_TYPES = {t.value for t in EventType}


def queue_for(event: dict[str, Any]) -> str:
    return QUEUE_URGENT if event.get("type") == EventType.OFFBOARDED else QUEUE_EVENTS


def actor_for(event: dict[str, Any]) -> str:
    """The name of the actor that takes ``event`` (offboarding takes the urgent lane)."""
    return ACTOR_URGENT_EVENT if queue_for(event) == QUEUE_URGENT else ACTOR_EVENT


@dataclass(frozen=True)
class Actors:
    handle_event: dramatiq.Actor[[dict[str, Any]], None]
    handle_urgent_event: dramatiq.Actor[[dict[str, Any]], None]
    reconcile: dramatiq.Actor[[str], None]

    def for_event(self, event: dict[str, Any]) -> dramatiq.Actor[[dict[str, Any]], None]:
        return self.handle_urgent_event if queue_for(event) == QUEUE_URGENT else self.handle_event


def declare_actors(
    broker: dramatiq.Broker, holder: AppHolder, policy: RetryPolicy, metrics: Metrics, watch: StateWatch
) -> Actors:
    options: dict[str, Any] = {
        "retry_when": policy.retry_when,
        "throws": DEAD_AT_ONCE,
        "min_backoff": policy.min_backoff_ms,
        "max_backoff": policy.max_backoff_ms,
    }

    def handle(event: dict[str, Any]) -> None:
        try:
            _handle_event(holder, metrics, event)
        except StateLost as exc:
            watch.lost(exc)
            raise
        except Exception as exc:
            translated = policy.translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def reconcile(ref: str) -> None:
        structlog.contextvars.bind_contextvars(customer_ref=ref)
        try:
            app = holder.get()
            _reconcile(app.reconciler, app.proofs, metrics, ref)
        except StateLost as exc:
            watch.lost(exc)
            raise
        except Exception as exc:
            translated = policy.translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def declare(name: str, queue: str, **extra: Any) -> Any:
        return dramatiq.actor(actor_name=name, queue_name=queue, broker=broker, **extra)

    return Actors(
        handle_event=declare(ACTOR_EVENT, QUEUE_EVENTS, **options)(handle),
        handle_urgent_event=declare(ACTOR_URGENT_EVENT, QUEUE_URGENT, **options)(handle),
        reconcile=declare("reconcile_customer", QUEUE_RECONCILE, **options)(reconcile),
    )


def _handle_event(holder: AppHolder, metrics: Metrics, event: dict[str, Any]) -> None:
    app = holder.get()
    event_id = event.get("id") if isinstance(event, dict) else None
    structlog.contextvars.bind_contextvars(  # input: escaped to printable ASCII and bounded
        event_id=printable(str(event_id), 64) if event_id else None,
        event_type=printable(str(event.get("type")), 64) if isinstance(event, dict) else None,
    )
    current = CurrentMessage.get_current_message()
    # first of all: only an authenticated publisher's event is taken (a Redis writer without the signing key can
    # enqueue messages, not events); nothing about the customer has been read or written yet
    doubt = app.proofs.check(event, current.options.get(PROOF_OPTION) if current is not None else None)
    if doubt is not None:
        metrics.events_refused.labels("unknown", "unauthenticated", field_label("$proof")).inc()
        structlog.contextvars.bind_contextvars(refused=doubt)
        raise UnauthenticatedEvent(doubt, peek_event_id(event))
    outcome = app.intake.accept(
        _unseal(holder, event),
        handoff_id=current.message_id if current else "",
        handoff_queue=q_name(current.queue_name) if current else "",
        lock=app.reconciler.lock_for,  # the reconcile below starts from the lock taken with the event
    )
    kind = str(event.get("type"))[:40] if isinstance(event, dict) and str(event.get("type")) in _TYPES else "unknown"
    if isinstance(outcome, Refused):
        reason = "customer_closed" if outcome.ignored else "id_conflict" if outcome.field == "id" else "invalid"
        metrics.events_refused.labels(kind, reason, field_label(outcome.field)).inc()
        structlog.contextvars.bind_contextvars(customer_ref=outcome.ref, refused=outcome.reason)
        if outcome.ignored:
            _log.info("event ignored: customer closed", field=outcome.field)
            return
        raise InvalidEvent(outcome.field, outcome.reason, outcome.event_id)
    metrics.events_received.labels(kind).inc()
    structlog.contextvars.bind_contextvars(customer_ref=outcome.ref, intake=outcome.result.value)
    _reconcile(app.reconciler, app.proofs, metrics, outcome.ref, taken=outcome.taken)


def _reconcile(
    reconciler: Reconciler, proofs: EventProofs, metrics: Metrics, ref: str, *, taken: Taken | None = None
) -> None:
    started = time.time()
    replayed = _replayed(proofs)
    try:
        report = reconciler.run(ref, retry_blocked=replayed, taken=taken)
    except StepsBlocked:
        metrics.reconciles.labels("blocked").inc()
        raise
    except Exception:
        metrics.reconciles.labels("error").inc()
        raise
    ended = time.time()
    # on the message's canonical line: what the run did, and when it ran (epoch seconds; its lock was held within)
    structlog.contextvars.bind_contextvars(
        reconcile=report.outcome, reconcile_at=round(started, 4), reconcile_s=round(ended - started, 4)
    )
    metrics.reconciles.labels(report.outcome).inc()
    if replayed and report.outcome == "busy":
        raise ReplayFoundCustomerBusy(ref)  # the retry is this message's: the run holding the lock is not one
    if report.outcome == "rate_limited" and report.waited_pool is not None:
        metrics.ratelimit_waits.labels(report.waited_pool).inc()
        metrics.ratelimit_wait_seconds.labels(report.waited_pool).inc(report.waited_ms / 1000)


def _unseal(holder: AppHolder, event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with its sealed KYC documents opened. Raises ``InvalidEvent`` (field ``data.kyc``) for documents
    that are not sealed or that our keys cannot open."""
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict):
        return event
    kyc = data.get("kyc")
    if kyc is None:
        return event
    if not (isinstance(kyc, dict) and (SEALED in kyc or ENVELOPE in kyc)):
        # the publisher and the HTTP API seal documents before they enqueue: plaintext here was put on the queue
        # by something else, and its personal data must not be taken (nor echoed: the error names no value)
        raise InvalidEvent(
            "data.kyc",
            "KYC documents must arrive sealed to the intake key (publish through the API or `provisioner publish`)",
            peek_event_id(event),
        )
    app = holder.get()
    try:
        if ENVELOPE in kyc:
            envelope = Envelope.model_validate(kyc[ENVELOPE])
            documents = app.intake_keys.open(envelope, event_id=str(event.get("id")))
        else:
            documents = app.keyring.open(SealedSecret.model_validate(kyc[SEALED]))
    except (CryptoError, ValueError):
        raise InvalidEvent(
            "data.kyc", "sealed KYC documents cannot be opened with our keys", peek_event_id(event)
        ) from None
    return {**event, "data": {**data, "kyc": documents}}


def _replayed(proofs: EventProofs) -> bool:
    """Whether the current message is an operator's replay (``provisioner dlq replay``): marked ``replayed_at``, with
    the proof of that mark. A mark without it (set by a Redis writer) is ignored, and logged."""
    message = CurrentMessage.get_current_message()
    if message is None or not message.options.get("replayed_at"):
        return False
    claim = replay_claim(message.message_id, message.options["replayed_at"])
    doubt = proofs.check(claim, message.options.get(REPLAY_PROOF_OPTION))
    if doubt is not None:
        _log.warning("replay mark ignored: not an operator's replay", reason=doubt)
        return False
    return True
