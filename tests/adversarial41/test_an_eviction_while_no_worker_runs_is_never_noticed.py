"""1f720e3 catches evictions by comparing Redis' ``evicted_keys`` (``INFO stats``) with what *this process* read
first (``StateGuard._evicted``, ``None`` in a new process: its first look only takes the baseline). An eviction that
happens while no worker process runs — a rolling deploy, a crash-looping fleet, the workers halted for another
reason while the HTTP API keeps admitting events, which is exactly when Redis' memory grows — is already in the
baseline of every process that starts afterwards: nothing is ever halted, and the day's funding ledger the eviction
took is gone for good."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from tests.adversarial.helpers import all_paid, total
from tests.core.harness import Rig, events_for
from tests.private_redis import PrivateRedis
from worker.bootstrap import build_app
from worker.store.epoch import EVICTIONS_EVERY_MS, StateLost

pytestmark = pytest.mark.redis

DAY_CAP = "USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000"


@pytest.fixture
def evicting_redis() -> Iterator[PrivateRedis]:
    """A durable Redis (AOF) with ``maxmemory-policy volatile-lru``, the managed services' default, accepted by
    the operator (``PROVISIONER_ALLOW_VOLATILE_REDIS``) or set after the workers' start-up check."""
    server = PrivateRedis(durable=True)
    server.start()
    redis.Redis.from_url(server.url).config_set("maxmemory-policy", "volatile-lru")
    yield server
    server.stop()


def _evict(r: redis.Redis, prefix: str) -> None:
    """Memory fills until Redis evicts, then room is made again (as in adv38's reproduction)."""
    for _ in range(200):
        r.config_set("maxmemory", str(int(r.info("memory")["used_memory"]) - 1))
        with contextlib.suppress(redis.ResponseError):
            r.append(f"{prefix}:pressure", "x" * 64)
        if int(r.info("stats")["evicted_keys"]):
            break
    r.config_set("maxmemory", "0")


def test_an_eviction_while_the_workers_were_down_goes_unnoticed_and_the_daily_cap_is_overrun(
    evicting_redis: PrivateRedis,
) -> None:
    """
    Scenario: Redis with ``volatile-lru`` (a managed Redis' default; the operator set
    ``PROVISIONER_ALLOW_VOLATILE_REDIS`` — e.g. ElastiCache offers no ``appendonly`` — or the policy was changed
    after start-up). The Special Account's daily cap is 1000 USDT. Customer A is funded 800 USDT; the worker's
    periodic check has taken its baseline of ``evicted_keys``. The worker processes then stop (a deploy, a crash
    loop, a node drained); meanwhile the HTTP API keeps admitting events and Redis' memory fills: it evicts — the
    day's ledger ``{p}:funding:<day>`` first, the only key of ours with a TTL. The workers start again; customer B
    is approved with 800 USDT.

    What happens: each new process's ``StateGuard`` starts with ``_evicted = None``; its first
    ``_check_evictions`` just records the current ``evicted_keys`` (already including the eviction) as its
    baseline. No ``StateLost('evicted')``, no halt; B's reservation starts from an empty day ledger: 1600 USDT leave
    the Special Account on a day capped at 1000.

    Why it is wrong: 1f720e3's promise ("the periodic state check halts the deployment (kind evicted) when Redis'
    evicted_keys grows") covers only evictions that happen while one particular process is alive; the moments
    without a worker are exactly when the backlog — and memory — grows. README: the caps "count every line that may
    have moved money"; a partial loss of Redis must be detected, never started over.

    Suggested fix: keep the baseline in Redis, not in the process: record ``evicted_keys`` together with Redis'
    ``run_id`` (``INFO server``) in the state hash (``{p}:state``), compare every check (and ``establish``) with
    it, and only re-base when ``run_id`` changed (a restart; with AOF the data survived, but an eviction before
    the restart is then still unknown — halt conservatively unless the policy is ``noeviction``). Simplest: under
    any policy other than ``noeviction`` halt at start-up too, not only refuse it in production.

    Likelihood: low-medium (needs an eviction policy accepted or set at runtime), impact high: the Special
    Account's daily cap silently void, with the eviction detector reporting all clear.
    """
    url = evicting_redis.url
    r = redis.Redis.from_url(url, decode_responses=True)
    rig = Rig(url, "adv41evict", PROVISIONER_FUNDING_CAP_PER_DAY=DAY_CAP)
    try:
        rig.app.state.check()  # the running worker's first look: its baseline
        a = events_for("evict41-a", funding=(("USDT", "800"),))
        ref_a = rig.publish(a["created"], a["kyc"])[0]
        rig.settle(ref_a)
        assert total(all_paid(rig)) == Decimal(800), "precondition: A funded"
        volatile = [k for k in r.scan_iter("adv41evict*") if r.pttl(k) >= 0]
        assert volatile and all(":funding:" in k for k in volatile), volatile

        rig.app.close()  # every worker process stops (a deploy, a crash loop)
        _evict(r, "adv41evict")  # the API admits a backlog meanwhile: Redis evicts
        assert int(r.info("stats")["evicted_keys"]) >= 1 and not r.exists(*volatile), "precondition: evicted"

        # the workers start again: a new process, a new StateGuard
        rig.app = build_app(rig.settings, transport=rig.transport, clock=rig.clock)
        rig.app.state.establish(ask_exchange=False)
        halted = None
        for _ in range(2):
            rig.clock.advance_ms(EVICTIONS_EVERY_MS)
            try:
                rig.app.state.check()
            except StateLost as exc:
                halted = exc
                break
        b = events_for("evict41-b", funding=(("USDT", "800"),))
        if halted is None:
            ref_b = rig.publish(b["created"], b["kyc"])[0]
            rig.settle(ref_b)
        paid = total(all_paid(rig))
        assert halted is not None and halted.kind == "evicted" and paid <= Decimal(1000), (
            f"no halt after the eviction (the new process took it as its baseline); the Special Account paid {paid} "
            "USDT today under a daily cap of 1000"
        )
    finally:
        rig.close()
        r.close()
