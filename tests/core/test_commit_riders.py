"""Riders of a commit (``worker.store.riders``): the rate limiter's admission and the day's cap reservation asked in
the script that records a write's intent. A refusal writes nothing of the commit (no intent, no journal line, no
version), and the run ends rate limited, the new customer's record stored alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from handlers.daily_cap import utc_day
from handlers.records import CustomerRecord
from tests.core.harness import Rig, events_for
from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.scope import CallScope
from worker.ratelimit import PoolQuota, SharedRateLimiter, pool_key
from worker.store.lock import CustomerLock


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix, PROVISIONER_RATE_LIMIT="true")  # the limiter runs on Redis' clock
    yield rig
    rig.close()


def _block_broker_pool(rig: Rig, for_ms: int) -> str:
    pool = ENDPOINTS["add_sub_account"].pool
    SharedRateLimiter(rig.app.redis, rig.app.keys, {pool: PoolQuota(2000)}).block(pool, for_ms)
    return pool


def test_an_intent_the_limiter_refuses_is_not_recorded_and_the_run_waits(rig: Rig) -> None:
    ev = events_for("riders-1")
    (ref,) = rig.publish(ev["created"])
    pool = _block_broker_pool(rig, 60_000)

    report = rig.run(ref)

    assert report is not None and report.outcome == "rate_limited"
    assert report.waited_pool == pool and 50_000 < report.waited_ms <= 60_000
    record = rig.record(ref)
    assert record is not None and record.pending is None and record.sub_account is None and record.version == 1
    assert [e["action"] for e in rig.app.store.journal(ref)] == ["customer.opened"]
    assert not any(rig.state()["stats"]["requests"].values()), "nothing was sent"
    assert rig.app.due.next_due_ms(ref) == report.wake_at_ms

    rig.app.redis.delete(pool_key(rig.app.keys, pool))  # the window is over
    again = rig.run(ref)

    assert again is not None and again.outcome == "idle"
    record = rig.record(ref)
    assert record is not None and record.sub_account is not None
    actions = [e["action"] for e in rig.app.store.journal(ref)]
    assert actions[:2] == ["customer.opened", "intent"] and actions.count("customer.opened") == 1


def test_a_new_customers_first_intent_stores_its_record_in_one_commit(rig: Rig) -> None:
    ev = events_for("riders-2")
    (ref,) = rig.publish(ev["created"])

    report = rig.run(ref)

    assert report is not None and report.outcome == "idle"
    journal = rig.app.store.journal(ref)
    assert [e["action"] for e in journal[:2]] == ["customer.opened", "intent"]
    assert journal[0]["at_ms"] == journal[1]["at_ms"]
    record = rig.record(ref)
    assert record is not None and record.version == 2  # opened with the intent, then the sub-account


def test_a_transfer_intent_reserves_the_days_cap_in_its_own_commit_once(rig: Rig) -> None:
    """The reservation rides first: when the limiter then says wait, the line stays reserved (idempotent per line)
    and no intent is recorded; the next run's intent reserves nothing more."""
    ev = events_for("riders-3", funding=[("USDT", "250")])
    (ref,) = rig.publish(ev["created"])
    assert rig.run(ref) is not None
    rig.publish(ev["kyc"])
    _block_broker_pool(rig, 60_000)

    report = rig.run(ref)

    assert report is not None and report.outcome == "rate_limited"
    record = rig.record(ref)
    assert record is not None and record.pending is None and not record.transfers
    ledger, today = rig.app.ledger, utc_day(int(rig.clock() * 1000))
    assert ledger.used(day=today, currency="USDT") == 250

    rig.app.redis.delete(pool_key(rig.app.keys, ENDPOINTS["transfer"].pool))
    rig.settle(ref)

    record = rig.record(ref)
    assert record is not None and [t.status for t in record.transfers.values()] == ["committed"]
    assert ledger.used(day=today, currency="USDT") == 250, "reserved once"


def test_a_soft_rider_answers_and_never_stops_the_commit(rig: Rig) -> None:
    """The read of a transfer's status ahead of its confirm step is asked of the limiter in the commit that records
    the accepted transfer: told to wait, the commit is written all the same and the read is not made."""
    (ref,) = rig.publish(events_for("riders-4")["created"])
    lock = CustomerLock(rig.app.redis, rig.app.keys, ref, ttl_ms=10_000)
    assert lock.acquire() and lock.token is not None
    read = ENDPOINTS["get_transfer"]
    limiter = SharedRateLimiter(rig.app.redis, rig.app.keys, {read.pool: PoolQuota(2000)})
    soft = replace(limiter.admit_rider(read, CallScope()), soft=True)
    record = CustomerRecord.new(ref, "riders-4", name_version=rig.app.policy.naming.current_version)

    first = rig.app.store.commit(lock.token, None, record, riders=[soft])
    limiter.block(read.pool, 60_000)
    second = rig.app.store.commit(lock.token, first.record, first.record, riders=[soft])

    assert first.answers == (0,) and first.record.version == 1
    assert second.record.version == 2 and 50_000 < second.answers[0] <= 60_000
    assert rig.record(ref) == second.record
