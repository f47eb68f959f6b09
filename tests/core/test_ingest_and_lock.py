"""The event actor stores an event and takes its customer's lock in one script (``CustomerStore.ingest_and_lock``,
``Intake.accept(lock=...)``), and the reconcile starts from that answer: the same runs as taking the lock after
storing, one round trip fewer per event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.core.harness import Rig, events_for
from worker.intake import Accepted, Refused
from worker.store.customers import IngestResult
from worker.store.lock import CustomerLock


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix)
    yield rig
    rig.close()


def _accept(rig: Rig, event: dict[str, object]) -> Accepted | Refused:
    return rig.app.intake.accept(event, lock=rig.app.reconciler.lock_for)


def test_a_new_event_is_stored_with_its_customer_locked_and_read(rig: Rig) -> None:
    ev = events_for("fused-1")
    accepted = _accept(rig, ev["created"])
    assert isinstance(accepted, Accepted) and accepted.result is IngestResult.NEW
    taken = accepted.taken
    assert taken is not None and taken.snapshot is not None and taken.lock.token is not None
    assert rig.app.redis.get(rig.app.keys.lock(accepted.ref)) == taken.lock.token
    assert [e.id for e in taken.snapshot.events] == [ev["created"]["id"]] and taken.snapshot.seq == 1

    report = rig.app.reconciler.run(accepted.ref, taken=taken)

    assert report.outcome == "idle" and report.steps == ["CreateSubAccount"]
    assert rig.app.redis.get(rig.app.keys.lock(accepted.ref)) is None, "released"
    again = _accept(rig, ev["kyc"])
    assert isinstance(again, Accepted) and again.taken is not None and again.taken.snapshot is not None
    assert again.taken.snapshot.record is not None and again.taken.snapshot.seq == 2
    rig.app.reconciler.run(again.ref, taken=again.taken)
    record = rig.record(again.ref)
    assert record is not None and len(record.keys) == 1 and len(record.transfers) == 1


def test_an_event_for_a_busy_customer_is_stored_and_its_holder_told(rig: Rig) -> None:
    ev = events_for("fused-2")
    (ref,) = rig.publish(ev["created"])
    holder = CustomerLock(rig.app.redis, rig.app.keys, ref, ttl_ms=10_000)
    assert holder.acquire()

    accepted = _accept(rig, ev["kyc"])

    assert isinstance(accepted, Accepted) and accepted.result is IngestResult.NEW
    assert accepted.taken is not None and accepted.taken.snapshot is None and accepted.taken.lock.token is None
    assert rig.app.redis.get(rig.app.keys.dirty(ref)) == "1", "the holder looks again before it lets go"
    due = rig.app.due.next_due_ms(ref)
    assert due is not None and due <= int(rig.clock() * 1000) + 1_000
    assert rig.app.reconciler.run(ref, taken=accepted.taken).outcome == "busy"
    assert rig.app.redis.get(rig.app.keys.lock(ref)) == holder.token, "the holder's lock is left alone"


def test_a_duplicate_is_locked_for_too_and_a_refused_event_locks_nothing(rig: Rig) -> None:
    ev = events_for("fused-3")
    (ref,) = rig.publish(ev["created"])
    duplicate = _accept(rig, ev["created"])
    assert isinstance(duplicate, Accepted) and duplicate.result is IngestResult.DUPLICATE
    assert duplicate.taken is not None and duplicate.taken.snapshot is not None
    duplicate.taken.lock.release()

    conflict = _accept(rig, {**ev["created"], "occurred_at": "2026-11-18T10:09:00Z"})

    assert isinstance(conflict, Refused) and conflict.conflict
    assert rig.app.redis.get(rig.app.keys.lock(ref)) is None
