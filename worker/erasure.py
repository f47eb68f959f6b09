"""Erase a closed customer's personal data (``handlers.erasure`` decides what and when; this applies it).

Under the customer's lock: the record's ``customer_id`` becomes ``erased:<ref>`` (one fenced commit, with a
``customer.forgotten`` journal line), every stored event's ``customer_id`` likewise (the events log is dropped: the
hash holds them all), and the KYC documents and their digests are deleted. Nothing a funding, transfer or key
decision reads is removed: transfers, keys, intents, funding lines and the journal stay (the financial audit
trail).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from handlers.erasure import KEPT, ErasureRefused, check_erasable, erased_id, erasure_due, is_erased, pseudonymised
from handlers.journal import JournalAction
from worker.store.customers import CustomerStore, JournalEntry
from worker.store.lock import CustomerLock

__all__ = ["Forgotten", "RetentionSweep", "forget"]


@dataclass(frozen=True)
class Forgotten:
    """What an erasure did: ``events`` rewritten, whether documents were still held, what it ``kept``."""

    ref: str
    already: bool
    events: int
    documents_dropped: bool
    kept: tuple[str, ...] = KEPT


def forget(store: CustomerStore, ref: str, *, now_ms: int, lock_ttl_ms: int, actor: str = "operator") -> Forgotten:
    """Erase closed customer ``ref``'s personal data. Safe to repeat (a second run reports ``already``).

    Raises ``ErasureRefused`` for an unknown customer, one not closed, or one a reconcile holds right now (run it
    again), and whatever the store raises (``StateLost``, ``CommitRejected``)."""
    record = check_erasable(store.load(ref), ref)
    lock = CustomerLock(store.redis, store.keys, ref, ttl_ms=lock_ttl_ms)
    if not lock.acquire():
        raise ErasureRefused(ref, "is being reconciled right now: run the erasure again")
    try:
        assert lock.token is not None
        record = check_erasable(store.load(ref), ref)  # as it is now that we hold it
        already = is_erased(record)
        pseudonym = erased_id(ref)
        events = _rewrite_events(store, ref, pseudonym)
        k = store.keys
        dropped = bool(store.redis.delete(k.docs(ref), k.docs_digests(ref)))
        if not already:
            store.commit(
                lock.token,
                record,
                record.model_copy(update={"customer_id": pseudonym}),
                journal=[JournalEntry(now_ms, JournalAction.CUSTOMER_FORGOTTEN, {"events": events}, actor=actor)],
                now_ms=now_ms,
            )
        return Forgotten(ref=ref, already=already, events=events, documents_dropped=dropped)
    finally:
        if lock.token is not None:
            lock.release()


def _rewrite_events(store: CustomerStore, ref: str, pseudonym: str) -> int:
    """Replace ``customer_id`` in every stored event of ``ref`` and drop its events log, in one transaction.
    Without the log every reader (its length no longer matches the event count) reads the whole events hash
    again, so no process keeps the old ids in its event cache. Returns how many events changed."""
    k = store.keys
    client: redis.Redis = store.redis
    stored: dict[str, str] = client.hgetall(k.events(ref))  # type: ignore[assignment]
    pipe = client.pipeline(transaction=True)
    changed = 0
    for eid, raw in stored.items():
        if (entry := _pseudonymised(raw, pseudonym)) != raw:
            pipe.hset(k.events(ref), eid, entry)
            changed += 1
    pipe.delete(k.events_log(ref))
    pipe.execute()
    return changed


def _pseudonymised(raw: str | bytes, pseudonym: str) -> str:
    return pseudonymised(raw.decode() if isinstance(raw, bytes) else raw, pseudonym)


class RetentionSweep:
    """Erases, a batch at a time, the personal data of customers closed longer than the retention period (the
    scheduler calls it on its stale-scan cadence). Walks every known customer in turns of ``batch``; the position
    is per process (a restart starts again from the first: erasure is idempotent and cheap to skip)."""

    def __init__(
        self, store: Callable[[], CustomerStore], *, retention_ms: int, lock_ttl_ms: int, batch: int = 200
    ) -> None:
        self._store = store
        self._retention_ms = retention_ms
        self._lock_ttl_ms = lock_ttl_ms
        self._batch = batch
        self._cursor = 0

    def __call__(self, now_ms: int) -> int:
        """One turn: returns how many customers were erased. An erasure refused (the customer busy) is tried again
        on a later turn; any other error propagates to the scheduler, which logs it."""
        store = self._store()
        last = self._cursor + self._batch - 1
        refs = [_text(r) for r in store.redis.zrange(store.keys.customers, self._cursor, last)]
        self._cursor += len(refs)
        if self._cursor >= int(store.redis.zcard(store.keys.customers)):  # walked them all: from the first again
            self._cursor = 0
        pipe = store.redis.pipeline(transaction=False)
        for ref in refs:
            pipe.exists(store.keys.closed(ref))
        closed = [ref for ref, flag in zip(refs, pipe.execute(), strict=True) if flag]
        erased = 0
        for ref in closed:
            if not erasure_due(store.load(ref), now_ms=now_ms, retention_ms=self._retention_ms):
                continue
            try:
                forget(store, ref, now_ms=now_ms, lock_ttl_ms=self._lock_ttl_ms, actor="retention")
            except ErasureRefused:
                continue
            erased += 1
        return erased


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
