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

from tests.private_redis import PrivateRedis

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
