"""The README asks for ``maxmemory-policy noeviction`` but nothing checks it (``cli/worker_cmd.check_durability``
refuses a Redis without ``appendonly``, never one with an eviction policy), and the one key that holds the Special
Account's daily cap carries a time-to-live (``{p}:funding:<day>``, 40 days), which makes it the first key a
``volatile-*`` policy evicts. Losing it is a partial loss the state epoch cannot see: the day's count starts again
from zero and the Special Account pays past its cap."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from cli.worker_cmd import check_durability
from tests.adversarial.helpers import all_paid, total
from tests.core.harness import Rig, events_for
from tests.private_redis import PrivateRedis
from worker.store.epoch import EVICTIONS_EVERY_MS, StateLost

pytestmark = pytest.mark.redis

DAY_CAP = "USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000"


@pytest.fixture
def evicting_redis() -> Iterator[PrivateRedis]:
    """A durable Redis of the test's own (AOF, ``appendfsync always``: it passes the worker's start-up check) left
    with the eviction policy managed Redis services ship by default (ElastiCache, Memorystore, Azure Cache:
    ``volatile-lru``)."""
    server = PrivateRedis(durable=True)
    server.start()
    redis.Redis.from_url(server.url).config_set("maxmemory-policy", "volatile-lru")
    yield server
    server.stop()


def test_an_evicted_daily_ledger_lets_the_special_account_pay_past_its_daily_cap(
    evicting_redis: PrivateRedis,
) -> None:
    """
    Scenario: Redis as a managed service ships it: ``appendonly yes`` (so the worker starts, production
    included) and ``maxmemory-policy volatile-lru`` with a ``maxmemory``. The Special Account's daily cap is 1000
    USDT. Customer A is funded 800 USDT (the day's ledger counts 800). Memory then fills — the outbound stream,
    which the worker never trims, grows while its consumer lags (modelled by lowering ``maxmemory`` just below
    what Redis holds); Redis evicts to make room, and then the consumer catches up and trims, so writes succeed
    again. Customer B is then approved with 800 USDT.

    What happens: ``volatile-lru`` may only evict keys with a time-to-live, and at rest the only such key of ours
    is ``{p}:funding:<day>`` (``EXPIRE`` 40 days, set by every reservation): it goes first. Nothing notices — the
    state epoch, its write counter and the host's mirror are intact (the guard checks ``{p}:state`` only), the
    worker's periodic check passes — and B's reservation starts from zero: 1600 USDT leave the Special Account on a
    day capped at 1000.

    Why it is wrong: README, "Money limits": the caps "count every line that may have moved money ... so no
    sequence of verdicts can exceed them"; "A lost or rolled-back Redis is detected, never started over". The
    README's Redis paragraph asks for ``noeviction``, but the start-up check enforces ``appendonly`` only, and
    the key that guards the money is exactly the one an eviction policy picks (records, events and the state hash
    carry no TTL). The same applies to ``allkeys-*`` policies, which can evict a funded customer's record, silently
    too.

    Suggested fix: in ``check_durability`` (and ``provisioner worker --check-state``) read ``CONFIG GET
    maxmemory-policy`` / ``INFO memory`` and refuse anything but ``noeviction`` in production (warn in
    development), as ``appendonly`` is refused; and/or watch ``evicted_keys`` in ``INFO stats`` from the periodic
    state check and halt (``StateLost``) when it grows. Drop the ``EXPIRE`` on the day ledger (delete days older
    than the ledger's 31-day window explicitly), so no policy prefers it.

    Likelihood: medium. ``volatile-lru`` is the default ``maxmemory-policy`` of ElastiCache, Memorystore and Azure
    Cache for Redis; memory pressure comes from our own never-trimmed outbound stream or a queue backlog in a
    campaign. Impact: the Special Account's daily cap — the broker's bound on money leaving it — is gone without
    an alert.
    """
    r = redis.Redis.from_url(evicting_redis.url, decode_responses=True)
    rig = Rig(evicting_redis.url, "adv38evict", PROVISIONER_FUNDING_CAP_PER_DAY=DAY_CAP)
    try:
        problem = check_durability(rig.settings, r)
        assert problem is not None and "maxmemory-policy is volatile-lru" in problem, (
            "production refuses to start on it (PROVISIONER_ALLOW_VOLATILE_REDIS accepts it): what follows is an "
            "operator who accepted it, or a policy changed while the workers ran"
        )
        rig.app.state.check()  # the periodic check's first look at Redis' evicted_keys
        a = events_for("evicted-a", funding=(("USDT", "800"),))
        ref_a = rig.publish(a["created"], a["kyc"])[0]
        rig.settle(ref_a)
        assert total(all_paid(rig)) == Decimal(800), "precondition: A funded"
        volatile = [k for k in r.scan_iter("adv38evict*") if r.pttl(k) >= 0]
        assert volatile and all(":funding:" in k for k in volatile), f"precondition: TTL keys at rest {volatile}"

        # memory fills (the outbound stream, say): Redis evicts what its policy allows to make room
        for _ in range(100):
            r.config_set("maxmemory", str(int(r.info("memory")["used_memory"]) - 1))
            with contextlib.suppress(redis.ResponseError):  # a write Redis refuses when eviction cannot make room
                r.append("adv38evict:pressure", "x" * 64)
            if int(r.info("stats")["evicted_keys"]):
                break
        # ... and the stream's consumer catches up and trims: writes succeed again
        r.config_set("maxmemory", "0")
        assert int(r.info("stats")["evicted_keys"]) >= 1 and not r.exists(*volatile), (
            f"precondition: evicted {r.info('stats')['evicted_keys']} {r.exists(*volatile)}"
        )
        rig.clock.advance_ms(EVICTIONS_EVERY_MS)
        with pytest.raises(StateLost) as lost:
            rig.app.state.check()  # the worker's periodic check sees the eviction
        assert lost.value.kind == "evicted", lost.value
        rig.app.state.halt(f"{lost.value.kind}: {lost.value.reason}")  # as StateWatch.lost does

        b = events_for("evicted-b", funding=(("USDT", "800"),))
        with pytest.raises(StateLost):  # halted: nothing is stored, nothing is sent until `provisioner recover`
            ref_b = rig.publish(b["created"], b["kyc"])[0]
            rig.settle(ref_b)
        paid = total(all_paid(rig))
        assert paid <= Decimal(1000), (
            f"the Special Account paid {paid} USDT today under a daily cap of 1000: the day's ledger was evicted "
            f"({volatile}) and nothing noticed"
        )
    finally:
        rig.close()
        r.close()
