"""The shared rate limiter on real Redis and real time: weights, reservations, feedback, the urgent lane."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator

import pytest
import redis

from sandbox import SandboxConfig
from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig
from worker.exchange.endpoints import Endpoint, Host
from worker.exchange.errors import RateLimitedError
from worker.exchange.http import RateLimitInfo
from worker.exchange.scope import CallScope
from worker.ratelimit import PoolQuota, SharedRateLimiter
from worker.store.keys import Keys

W1 = Endpoint("w1", "POST", "/x", Host.BROKER, "Test", 1, write=True)
W3 = dataclasses.replace(W1, name="w3", weight=3)


@pytest.fixture
def limiter(redis_url: str, key_prefix: str) -> Iterator[SharedRateLimiter]:
    client = redis.Redis.from_url(redis_url)
    yield SharedRateLimiter(client, Keys(key_prefix), {"Test": PoolQuota(100, 1000)}, headroom=0.1)
    client.close()


def ask(limiter: SharedRateLimiter, endpoint: Endpoint, who: str | None = None, *, is_urgent: bool = False) -> int:
    return limiter.wait_ms(endpoint, CallScope(rate_key=who, urgent=is_urgent))


def test_weight_admitted_in_any_window_stays_within_the_quota(limiter: SharedRateLimiter) -> None:
    """Greedy callers for 2.5 s: the weight admitted in every 1 s span is at most the quota, and close to it."""
    admitted: list[tuple[float, int]] = []
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        endpoint = W3 if len(admitted) % 2 else W1
        if ask(limiter, endpoint) == 0:
            admitted.append((time.monotonic(), endpoint.weight))
        else:
            time.sleep(0.002)
    for t0, _ in admitted:
        assert sum(w for t, w in admitted if t0 <= t < t0 + 1.0) <= 100
    total = sum(w for _, w in admitted)
    assert 0.85 * 250 <= total <= 250, total


def test_a_waiting_caller_keeps_its_slot_and_is_admitted_once(limiter: SharedRateLimiter) -> None:
    """A backlog of 40 customers: each is given its own slot and admitted when it comes back: one wait each."""
    for _ in range(20):  # use up the burst
        ask(limiter, W1)
    waits, slots = {}, []
    for i in range(40):
        before = time.monotonic() * 1000
        waits[i] = ask(limiter, W3, f"cust{i}")
        # when its slot comes lies between these two (a wait counts from inside its own call: load-proof)
        slots.append((before + waits[i], time.monotonic() * 1000 + waits[i]))
    assert len(set(waits.values())) > 30, "slots are spread, not one shared reset time"
    assert all(earlier[0] <= later[1] for earlier, later in itertools.pairwise(slots)), "a later caller's slot is later"
    start = time.monotonic()
    deadline = start + max(waits.values()) / 1000 + 0.5
    pending, bounces = dict(waits), 0
    while pending and time.monotonic() < deadline:
        elapsed = (time.monotonic() - start) * 1000
        for i, due in list(pending.items()):
            if elapsed >= due:
                again = ask(limiter, W3, f"cust{i}")
                if again == 0:
                    del pending[i]
                else:
                    bounces += 1
                    pending[i] = int(elapsed) + again
        time.sleep(0.001)
    assert not pending
    assert bounces <= 4, "clock granularity aside, nobody waits twice"


def test_a_429_blocks_everyone_until_the_reset_and_shifts_reservations(
    limiter: SharedRateLimiter, redis_url: str
) -> None:
    other = SharedRateLimiter(redis.Redis.from_url(redis_url), limiter.keys, limiter.pools, headroom=0.1)
    for _ in range(40):
        ask(limiter, W1)
    held = ask(limiter, W3, "held")
    other.observe(W1, RateLimitInfo(100, 0, 700), 429)  # another process hears 429 with a 700 ms reset
    assert ask(limiter, W1) >= 650, "every process waits for the reset"
    assert ask(limiter, W3, "held") >= held + 600, "reservations move with the block"
    with pytest.raises(RateLimitedError) as info:
        limiter.acquire(W1)
    assert info.value.retry_after_ms is not None and info.value.retry_after_ms >= 600


def test_low_remaining_from_the_exchange_blocks_until_its_reset(limiter: SharedRateLimiter) -> None:
    """Someone else used the key: the exchange's own count wins. What it says is left goes (less the urgent lane's
    1 %), and no more until its reset (it used to block at once below 30 left, wasting the end of every window)."""
    limiter.observe(W1, RateLimitInfo(100, 5, 400), 200)
    assert [ask(limiter, W1) for _ in range(4)] == [0, 0, 0, 0]
    assert ask(limiter, W1) >= 350


def test_urgent_work_is_not_queued_behind_the_backlog(limiter: SharedRateLimiter) -> None:
    """With seconds of reservations queued, a revocation goes now; the backlog moves back by its cost."""
    waits = [ask(limiter, W3, f"b{i}") for i in range(150)]
    assert waits[-1] > 3000
    assert ask(limiter, W3, "revoker", is_urgent=True) == 0
    assert ask(limiter, W3, "b149") >= waits[-1] + 25, "a queued customer now waits the urgent call's cost longer"


def test_worker_at_the_exchange_quota_sees_no_429(redis_url: str, key_prefix: str) -> None:
    """The simulator's quota is small (60 weight per 3 s): 12 onboardings (7 weight each) must wait for quota,
    and the exchange never has to answer 429."""
    config = SandboxConfig(broker_quota=60, window_ms=3000)
    with WorkerRig(
        redis_url, key_prefix, config=config, PROVISIONER_BROKER_QUOTA="60", PROVISIONER_RATE_WINDOW_MS="3000"
    ) as rig:
        started = time.monotonic()
        for i in range(12):
            ev = events_for(f"q{i}")
            rig.publisher.publish(ev["created"])
            rig.publisher.publish(ev["kyc"])
        rig.wait_for(lambda: len(rig.live_keys()) == 12, timeout=60, what="12 customers")
        took = time.monotonic() - started
        stats = rig.exchange.state_snapshot()["stats"]
        assert stats["rateLimited"] == 0, stats
        assert took >= 3.0, "84 weight at 60 per 3 s cannot finish in one window"
        assert rig.metric("provisioner_reconciles_total", outcome="rate_limited") > 0
