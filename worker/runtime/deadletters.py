"""Dead letters that keep the *final* error, and the operations behind ``provisioner dlq``.

dramatiq's nack moves the bytes last *enqueued* into the dead-letter set, not the message as the Retries
middleware just updated it, so the stored copy shows an earlier attempt's traceback, or none (the ``nack``
command of dramatiq 2.2's ``brokers/redis/dispatch.lua`` copies ``<queue>.msgs[message id]`` into ``<queue>.XQ``
as it is; with ``max_retries=0`` there is no traceback at all). ``DeadLetterMiddleware.before_nack`` rewrites the
stored copy with the current message and writes our own metadata (``{prefix}:dlq:<message id>``): failure kind,
reason, final traceback, time.

``DeadLetters`` lists, shows, replays and purges them. A replay enqueues a clean copy (no retries, traceback or
eta: a fresh retry budget; an event's own proof kept as it was) marked ``replayed_at`` with a proof of the mark
(``worker.event_proof.REPLAY_PROOF_OPTION``: only then does the worker retry blocked steps), then removes the dead
letter; replaying an id that is no
longer there reports it, so running a replay twice is safe.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import q_name, xq_name
from dramatiq.middleware import Middleware

from worker.event_proof import REPLAY_PROOF_OPTION, EventProofs, replay_claim
from worker.logs import REDACTED, _scrub
from worker.runtime.handoff import Handoff
from worker.runtime.retry_policy import failure_kind
from worker.store.due import DueSchedule
from worker.store.keys import Keys

__all__ = ["DeadLetter", "DeadLetterMiddleware", "DeadLetters", "shown_args", "without_plain_documents"]

_log = structlog.get_logger(__name__)
RETRY_AFTER_DEAD_MS = 3_600_000
"""A customer whose reconcile was dead-lettered for a transient reason is looked at again after this long."""
METADATA_TTL_S = 8 * 86400
"""Our metadata outlives dramatiq's dead-letter retention (7 days) by a day."""
_CLEAN = ("redis_message_id", "eta", "traceback", "retries", "requeue_timestamp", "replayed_at", REPLAY_PROOF_OPTION)


class DeadLetterMiddleware(Middleware):
    """Keeps the final failure of every dead-lettered message. Never raises (a failing middleware would hide the
    original error): problems are logged."""

    def __init__(
        self, client: Callable[[], redis.Redis], keys: Keys, on_dead: Callable[[str, str], None] | None = None
    ) -> None:
        self._client = client
        self._keys = keys
        self._on_dead = on_dead or (lambda queue, kind: None)

    def before_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        try:
            # first, on its own: a dead event message is an operator's to replay, the hand-off must not send it
            # again by itself (even if recording the metadata below fails)
            pipe = self._client().pipeline(transaction=True)
            pipe.zrem(self._keys.handoff(q_name(message.queue_name)), message.message_id)
            pipe.hdel(self._keys.handoff_bodies, message.message_id)
            pipe.hdel(self._keys.handoff_resends, message.message_id)
            pipe.execute()
        except Exception:
            _log.exception("could not take a dead letter out of the hand-off", message_id=message.message_id)
        try:
            exc: BaseException | None = getattr(message, "_exception", None)
            kind = failure_kind(exc) if exc is not None else "unknown_actor"
            queue = q_name(message.queue_name)
            if isinstance(broker, RedisBroker) and "redis_message_id" in message.options:
                # KYC documents in the clear (put on the queue by something other than our sealing publishers)
                # are not kept in the dead letter: what is kept is replayable by an operator, these never are
                stored = message.copy(args=without_plain_documents(message.args)) if message.args else message
                broker.client.hset(
                    f"{broker.namespace}:{queue}.msgs", message.options["redis_message_id"], stored.encode()
                )
            reason = _reason(exc)
            trace = "".join(traceback.format_exception(exc, limit=30)) if exc is not None else ""
            key = self._keys.dead_letter(message.message_id)
            client = self._client()
            client.hset(
                key,
                mapping={
                    "message_id": message.message_id,
                    # dramatiq enqueues a message under a new redis id each time (a retry, a replay): the admission
                    # asks dramatiq's dead letter under the one it died with (``admission.HELD_LUA``)
                    "redis_message_id": str(message.options.get("redis_message_id", "")),
                    "queue": queue,
                    "actor": message.actor_name,
                    "kind": kind,
                    "reason": _scrub(reason)[:2000],
                    "traceback": _scrub(trace)[-8000:],
                    "retries": str(message.options.get("retries", 0)),
                    "failed_at_ms": str(int(time.time() * 1000)),
                },
            )
            client.expire(key, METADATA_TTL_S)
            if message.actor_name == "reconcile_customer" and kind in ("retryable", "error", "auth_config"):
                # the customer may have nothing else that wakes it (no new event, no unsettled intent): try
                # again in an hour rather than wait for someone to replay this letter
                ref = str(message.args[0]) if message.args else ""
                if ref:
                    DueSchedule(client, self._keys).backstop(ref, int(time.time() * 1000) + RETRY_AFTER_DEAD_MS)
            self._on_dead(queue, kind)
            _log.warning(
                "message dead-lettered",
                message_id=message.message_id,
                actor=message.actor_name,
                queue=queue,
                kind=kind,
                reason=_scrub(reason)[:500],
            )
        except Exception:
            _log.exception("could not record a dead letter's final error", message_id=message.message_id)


def without_plain_documents(args: Iterable[Any]) -> tuple[Any, ...]:
    """``args`` with any event's KYC documents that are not sealed (``$sealed`` or ``$envelope``) replaced by
    ``[redacted]``: personal data in the clear is never stored in a dead letter."""
    return tuple(_without_plain_documents(arg) for arg in args)


def shown_args(args: Iterable[Any], customer_ref: Callable[[str], str]) -> list[Any]:
    """``args`` as an operator is shown them: no KYC documents in the clear, and an event's upstream
    ``customer_id`` (personal data) replaced by our ``customer_ref`` (what ``customer show --ref`` takes)."""
    shown = []
    for arg in without_plain_documents(args):
        if isinstance(arg, dict) and isinstance(arg.get("customer_id"), str):
            shown.append({k if k != "customer_id" else "customer_ref": v for k, v in arg.items()})
            shown[-1]["customer_ref"] = customer_ref(arg["customer_id"])
        else:
            shown.append(arg)
    return shown


def _without_plain_documents(arg: Any) -> Any:
    data = arg.get("data") if isinstance(arg, dict) else None
    if not isinstance(data, dict):
        return arg
    kyc = data.get("kyc")
    if kyc is None or (isinstance(kyc, dict) and ("$sealed" in kyc or "$envelope" in kyc)):
        return arg
    return {**arg, "data": {**data, "kyc": REDACTED}}


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "no actor by this name"
    cause = exc.__cause__ if isinstance(exc, dramatiq.Retry) and exc.__cause__ is not None else exc
    return f"{type(cause).__name__}: {cause}"


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    redis_id: str
    queue: str
    actor: str
    failed_at_ms: int
    retries: int
    kind: str
    reason: str
    traceback: str
    args: list[Any]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "queue": self.queue,
            "actor": self.actor,
            "failed_at_ms": self.failed_at_ms,
            "retries": self.retries,
            "kind": self.kind,
            "reason": self.reason,
            "subject": self.subject,
        }

    @property
    def subject(self) -> str:
        """What the message was about: event id and type, or the customer ref of a reconcile."""
        first = self.args[0] if self.args else None
        if isinstance(first, dict):
            return f"{first.get('type', '?')} {first.get('id', '?')}"
        return str(first) if first is not None else ""


class DeadLetters:
    """Operator's view of the dead-letter sets of our queues."""

    def __init__(
        self,
        broker: RedisBroker,
        client: redis.Redis,
        keys: Keys,
        queues: Iterable[str],
        *,
        handoff: Handoff | None = None,
        proofs: EventProofs | None = None,
    ) -> None:
        self._broker = broker
        self._handoff = handoff
        self._proofs = proofs
        self._raw = broker.client
        self._redis = client
        self._keys = keys
        self._queues = list(queues)

    def list(self, *, actor: str | None = None, since_ms: int | None = None) -> list[DeadLetter]:
        """Every dead letter, oldest first, optionally only one actor's or those failed since ``since_ms``."""
        letters = []
        for queue in self._queues:
            ns = self._broker.namespace
            rows = self._raw.zrangebyscore(f"{ns}:{xq_name(queue)}", since_ms or "-inf", "+inf", withscores=True)
            if not rows:
                continue
            ids = [r[0] for r in rows]
            bodies = self._raw.hmget(f"{ns}:{xq_name(queue)}.msgs", ids)
            for (redis_id, score), body in zip(rows, bodies, strict=True):
                if body is None:
                    continue
                letter = self._letter(queue, _text(redis_id), int(score), body)
                if actor is None or letter.actor == actor:
                    letters.append(letter)
        return sorted(letters, key=lambda d: d.failed_at_ms)

    def get(self, message_id: str) -> DeadLetter | None:
        return next((d for d in self.list() if d.message_id == message_id), None)

    def replay(self, message_id: str) -> bool:
        """Enqueue a clean copy of the dead letter with a fresh retry budget, then drop it. False if absent."""
        letter = self.get(message_id)
        if letter is None:
            return False
        ns = self._broker.namespace
        body = self._raw.hget(f"{ns}:{xq_name(letter.queue)}.msgs", letter.redis_id)
        if body is None:
            return False
        message = dramatiq.Message.decode(body if isinstance(body, bytes) else str(body).encode())
        options = {k: v for k, v in message.options.items() if k not in _CLEAN}
        options["replayed_at"] = int(time.time() * 1000)
        if self._proofs is not None:  # the worker honours the mark (an operator's retry) only with this proof
            options[REPLAY_PROOF_OPTION] = self._proofs.sign(replay_claim(message.message_id, options["replayed_at"]))
        clean = dataclasses.replace(message, options=options)
        if self._handoff is not None and q_name(clean.queue_name) in self._handoff.queues:
            self._handoff.send(clean)
        else:
            self._broker.enqueue(clean)
        self._drop(letter)
        self._redis.hset(self._keys.dead_letter(message_id), "replayed_at_ms", str(options["replayed_at"]))
        return True

    def purge(self, letters: Iterable[DeadLetter]) -> int:
        count = 0
        for letter in letters:
            self._drop(letter)
            self._redis.delete(self._keys.dead_letter(letter.message_id))
            count += 1
        return count

    def drop_resolved(self, ref: str, *, customer_ref: Callable[[str], str]) -> tuple[str, ...]:
        """Drop the dead letters an operator's fix of customer ``ref`` made obsolete, once nothing of it is blocked
        and it has been reconciled or is due (``customer retry`` ran it; ``settle-transfer`` scheduled it): its
        reconcile messages (they carry nothing but the ref) whatever their failure, and its
        events' messages dead-lettered as ``blocked`` (intake had stored the event before the run blocked, so the
        record has it). An event dead-lettered for any other reason is kept: it may have failed before it was
        stored. ``customer_ref`` maps an event's ``customer_id`` to our ref. Returns the dropped message ids."""
        obsolete = [letter for letter in self.list() if _about(letter, ref, customer_ref)]
        self.purge(obsolete)
        return tuple(letter.message_id for letter in obsolete)

    def count(self) -> dict[str, int]:
        ns = self._broker.namespace
        return {q: int(self._raw.zcard(f"{ns}:{xq_name(q)}")) for q in self._queues}

    def _drop(self, letter: DeadLetter) -> None:
        ns = self._broker.namespace
        pipe = self._raw.pipeline()
        pipe.zrem(f"{ns}:{xq_name(letter.queue)}", letter.redis_id)
        pipe.hdel(f"{ns}:{xq_name(letter.queue)}.msgs", letter.redis_id)
        pipe.execute()

    def _letter(self, queue: str, redis_id: str, score: int, body: bytes) -> DeadLetter:
        message = dramatiq.Message.decode(body)
        meta: dict[str, str] = dict(self._redis.hgetall(self._keys.dead_letter(message.message_id)) or {})  # type: ignore[arg-type]
        return DeadLetter(
            message_id=message.message_id,
            redis_id=redis_id,
            queue=queue,
            actor=message.actor_name,
            failed_at_ms=int(meta.get("failed_at_ms") or score),
            retries=int(message.options.get("retries", 0)),
            kind=meta.get("kind", "unknown"),
            reason=meta.get("reason") or _last_line(message.options.get("traceback")) or "no reason recorded",
            traceback=meta.get("traceback") or message.options.get("traceback") or "",
            args=list(message.args),
        )


def _about(letter: DeadLetter, ref: str, customer_ref: Callable[[str], str]) -> bool:
    """Whether ``letter`` is one of customer ``ref``'s that an operator's fix made obsolete (``drop_resolved``)."""
    first = letter.args[0] if letter.args else None
    if letter.actor == "reconcile_customer":
        return first == ref
    if letter.kind != "blocked" or not isinstance(first, dict):
        return False
    customer_id = first.get("customer_id")
    return isinstance(customer_id, str) and customer_ref(customer_id) == ref


def _last_line(trace: str | None) -> str:
    return trace.strip().splitlines()[-1] if trace else ""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
