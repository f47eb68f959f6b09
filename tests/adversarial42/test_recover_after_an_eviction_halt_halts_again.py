"""f390c2c keeps the eviction baseline in Redis (``{p}:state:evictions`` = ``<run_id>:<evicted_keys>``) and raises
``StateLost('evicted')`` whenever Redis' ``evicted_keys`` is above it. The baseline is written only when no eviction
was found: the halting check leaves the old count in place, and ``provisioner recover`` (``worker.recovery``,
``StateGuard.recover``) never touches the key. After the on-call has done everything asked — set
``maxmemory-policy noeviction``, run ``recover`` — the first state check of every worker compares the same
unchanged ``evicted_keys`` with the same stale baseline and halts the deployment again, for ever."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import redis

from tests.core.harness import Rig
from tests.private_redis import PrivateRedis
from worker.bootstrap import build_app
from worker.recovery import recover
from worker.store.epoch import EVICTIONS_EVERY_MS, StateLost

pytestmark = pytest.mark.redis


@pytest.fixture
def evicting_redis() -> Iterator[PrivateRedis]:
    """A private durable Redis with ``volatile-lru`` (never the shared one: ``evicted_keys`` is instance-wide)."""
    server = PrivateRedis(durable=True)
    server.start()
    redis.Redis.from_url(server.url).config_set("maxmemory-policy", "volatile-lru")
    yield server
    server.stop()


def _evict(r: redis.Redis, prefix: str) -> None:
    r.set(f"{prefix}:victim", "x", px=3_600_000)  # a key with a TTL, as the day's funding ledger
    for _ in range(200):
        r.config_set("maxmemory", str(int(r.info("memory")["used_memory"]) - 1))
        with contextlib.suppress(redis.ResponseError):
            r.append(f"{prefix}:pressure", "x" * 64)
        if int(r.info("stats")["evicted_keys"]):
            break
    r.config_set("maxmemory", "0")


def test_recover_after_an_eviction_halt_lets_the_workers_run_again(evicting_redis: PrivateRedis) -> None:
    """
    Scenario: a worker's periodic check has stored the eviction baseline. Redis evicts a key (volatile-lru). The
    next check raises ``StateLost('evicted')`` and the deployment halts. The on-call does what the message says
    (``CONFIG SET maxmemory-policy noeviction``) and runs ``provisioner recover`` (the halt is a loss: the
    recovered epoch, the audit, the re-publication). The workers start again.

    What happens: ``{p}:state:evictions`` still holds ``<run_id>:0`` (the halting check returned before writing),
    ``recover`` does not reset it, Redis still reports ``evicted_keys`` 1 under the same ``run_id``: the first
    check of every restarted worker raises ``StateLost('evicted')`` again — the deployment halts again right after
    each recover. The only ways out are undocumented (DEL the key by hand, restart Redis).

    Why it is wrong: no customer may be stuck for ever; the recovery procedure must end a halt it was run for. A
    detector that re-fires on the same, already-recovered eviction makes ``recover`` useless.

    Suggested fix: ``recover`` (or ``StateGuard.recover``, atomically with the new epoch) stores the current
    ``<run_id>:<evicted_keys>`` as the baseline; or the check writes the new count before raising (the halt flag
    is what keeps the deployment stopped until recover).

    Likelihood: certain after any eviction halt (the first time an eviction is actually detected); impact: the
    whole deployment halted until someone finds the key by reading the source.
    """
    url = evicting_redis.url
    r = redis.Redis.from_url(url, decode_responses=True)
    rig = Rig(url, "adv42evict")
    try:
        rig.app.state.check()  # baseline stored
        assert r.get(rig.app.keys.state_evictions), "precondition: baseline in Redis"
        _evict(r, "adv42evict")
        assert int(r.info("stats")["evicted_keys"]) >= 1, "precondition: evicted"
        rig.clock.advance_ms(EVICTIONS_EVERY_MS)
        with pytest.raises(StateLost) as caught:
            rig.app.state.check()
        assert caught.value.kind == "evicted"
        rig.app.state.halt(str(caught.value))
        rig.app.close()

        r.config_set("maxmemory-policy", "noeviction")  # the on-call follows the message
        operator = build_app(rig.settings, transport=rig.transport, clock=rig.clock)
        try:
            recover(operator, reason="evicted; policy now noeviction")
        finally:
            operator.close()

        rig.app = build_app(rig.settings, transport=rig.transport, clock=rig.clock)
        rig.app.state.establish(ask_exchange=False)
        again = None
        for _ in range(2):
            rig.clock.advance_ms(EVICTIONS_EVERY_MS)
            try:
                rig.app.state.check()
            except StateLost as exc:
                again = exc
                break
        assert again is None, (
            f"after recover the first state check halts again: {again}; baseline {r.get(rig.app.keys.state_evictions)}"
            f", evicted_keys {r.info('stats')['evicted_keys']}"
        )
    finally:
        rig.close()
        r.close()
