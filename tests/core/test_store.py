"""The store reads a customer's events incrementally (append-only log, per-process cache) and folds them once
per set of events, without ever missing or repeating one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from handlers.events import parse_event
from tests.core.harness import Rig, events_for
from worker.store.customers import EventCache


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix)
    yield rig
    rig.close()


def ids(snapshot) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(e.id for e in snapshot.events)


def test_events_stored_after_a_read_are_read_and_earlier_ones_kept(rig: Rig) -> None:
    ev = events_for("incremental")
    (ref,) = rig.publish(ev["created"])
    assert ids(rig.app.store.snapshot(ref)) == ["incremental-created"]
    rig.publish(ev["kyc"], ev["ip"])
    snapshot = rig.app.store.snapshot(ref)
    assert ids(snapshot) == ["incremental-created", "incremental-ip_changed", "incremental-kyc_approved"]
    assert snapshot.seq == 3
    rig.publish(ev["rotate"])
    rig.run(ref)  # the lock-and-read path extends the same cache
    assert len(rig.app.store.snapshot(ref).events) == 4


def test_a_customer_stored_before_the_log_existed_is_read_whole(rig: Rig) -> None:
    ev = events_for("pre-log")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.app.redis.delete(rig.app.keys.events_log(ref))  # as an older version stored it: no log
    rig.app.store._events = EventCache()  # a process that never read this customer
    assert ids(rig.app.store.snapshot(ref)) == ["pre-log-created", "pre-log-kyc_approved"]
    rig.publish(ev["ip"])
    assert len(rig.app.store.snapshot(ref).events) == 3


def test_the_cache_forgets_the_least_recently_read_customer() -> None:
    event = parse_event(events_for("lru")["created"], None)
    cache = EventCache(size=2)
    for ref in ("a", "b", "c"):
        cache.extend(ref, 0, (event,))
    assert [cache.count(ref) for ref in ("a", "b", "c")] == [0, 1, 1]


def test_the_fold_is_recomputed_when_events_or_documents_change(rig: Rig) -> None:
    ev = events_for("folded")
    (ref,) = rig.publish(ev["created"])
    first = rig.app.store.desired(ref, rig.app.store.snapshot(ref))
    assert first.created and first.access is None
    rig.publish(ev["kyc"])
    second = rig.app.store.desired(ref, rig.app.store.snapshot(ref))
    assert second.access is not None
