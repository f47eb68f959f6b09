"""The limiter's Lua script on real Redis follows the pure window rules (``handlers.quota``) answer for answer: the
same campaigns, on a pinned clock, give the same waits, no 429, and the same end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.handlers.quota_sim import campaign
from tests.handlers.test_quota import Pure, warm
from worker.exchange.endpoints import Endpoint, Host
from worker.exchange.http import RateLimitInfo
from worker.exchange.scope import CallScope
from worker.ratelimit import PoolQuota, SharedRateLimiter
from worker.store.keys import Keys

ENDPOINTS = {w: Endpoint(f"w{w}", "POST", "/x", Host.BROKER, "Test", w, write=True) for w in (1, 3)}


class Scripted:
    """``SharedRateLimiter`` (its Lua scripts) as a limiter of the simulation, on the simulation's clock."""

    def __init__(self, client: redis.Redis, prefix: str, quota: int) -> None:
        self.now = 0
        self.inner = SharedRateLimiter(
            client, Keys(prefix), {"Test": PoolQuota(quota, 30_000)}, urgent_share=0.01, now_ms=lambda: self.now
        )

    def ask(self, now: int, who: str, weight: int, *, urgent: bool) -> int:
        self.now = now
        return self.inner.wait_ms(ENDPOINTS[weight], CallScope(rate_key=who, urgent=urgent))

    def hear(self, now: int, *, limit: int, remaining: int, reset_ms: int, refused: bool) -> None:
        self.now = now
        self.inner.observe(ENDPOINTS[1], RateLimitInfo(limit, remaining, reset_ms), 429 if refused else 200)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.mark.parametrize(("customers", "urgent"), [(90, frozenset()), (400, frozenset({7, 150, 399}))])
def test_the_script_and_the_pure_rules_agree_on_a_campaign(
    client: redis.Redis, key_prefix: str, customers: int, urgent: frozenset[int]
) -> None:
    """90 customers (three windows) and 400 (ten, three of them urgent) at 300 per 30 s."""
    pure = campaign(warm(Pure(300), 999_000, 300), customers=customers, quota=300, urgent=urgent)
    scripted = Scripted(client, key_prefix, 300)
    scripted.hear(999_000, limit=300, remaining=300, reset_ms=0, refused=False)
    lua = campaign(scripted, customers=customers, quota=300, urgent=urgent)
    assert lua.refused == pure.refused == 0
    assert lua.waits == pure.waits
    assert lua.finished_ms == pure.finished_ms


def test_from_cold_the_rate_schedule_admits_until_the_first_answer(client: redis.Redis, key_prefix: str) -> None:
    """Before the exchange ever answered, the rate schedule admits a burst only; the first answer sets the window
    (counting that burst), which is then filled to the limit, with no 429."""
    scripted = Scripted(client, key_prefix, 300)
    out = campaign(scripted, customers=90, quota=300)
    assert out.refused == 0
    assert out.sent_weight == 630
    assert out.finished_ms - 1_000_000 <= 61_000


def test_top_shows_how_far_ahead_customers_are_booked(client: redis.Redis, key_prefix: str) -> None:
    """``pool_states`` (``provisioner top``): customers booked into later windows show as the schedule running
    ahead until the window the last of them is due in."""
    from worker.ratelimit import pool_states

    scripted = Scripted(client, key_prefix, 300)
    scripted.inner.now_ms = None  # Redis' clock, which pool_states reads
    scripted.inner.observe(ENDPOINTS[1], RateLimitInfo(300, 300, 0), 200)
    admitted = [scripted.inner.wait_ms(ENDPOINTS[3], CallScope(rate_key=f"c{i}")) for i in range(99)]
    assert admitted == [0] * 99, "297 of the window's 300 (1 % kept for the urgent lane)"
    waits = [scripted.inner.wait_ms(ENDPOINTS[3], CallScope(rate_key=f"w{i}")) for i in range(150)]
    assert max(waits) > 30_000, "450 weight booked: two more windows"
    (state,) = pool_states(client, Keys(key_prefix), ["Test"])
    assert abs(state.scheduled_ahead_ms - max(waits)) < 1_000


def test_an_answer_far_from_the_limit_about_a_window_already_heard_costs_no_round_trip(
    client: redis.Redis, key_prefix: str
) -> None:
    """Most answers say nothing new: the window this process already told Redis of, more than half of the limit
    left. Those are not sent to Redis; the first answer of each window, every answer near the limit and every 429
    are."""
    scripted = Scripted(client, key_prefix, 300)
    heard: list[list[str | int]] = []
    script = scripted.inner._hear

    def counting(*, keys: list[str], args: list[str | int]) -> object:
        heard.append(args)
        return script(keys=keys, args=args)

    scripted.inner._hear = counting  # type: ignore[assignment]
    scripted.hear(1_000_000, limit=300, remaining=290, reset_ms=20_000, refused=False)
    assert len(heard) == 1, "the first answer of a window"
    scripted.hear(1_000_100, limit=300, remaining=280, reset_ms=19_900, refused=False)
    assert len(heard) == 1, "the same window, 280 of 300 left"
    scripted.hear(1_000_200, limit=300, remaining=140, reset_ms=19_800, refused=False)
    assert len(heard) == 2, "less than half left"
    scripted.hear(1_020_500, limit=300, remaining=299, reset_ms=29_500, refused=False)
    assert len(heard) == 3, "the next window"
    scripted.hear(1_020_600, limit=300, remaining=0, reset_ms=29_400, refused=True)
    assert len(heard) == 4, "a 429"
