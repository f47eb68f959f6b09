"""Fixtures of the webhook tests: settings pointing at a loopback receiver, a fake clock, events on the stream."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from tests.core.harness import settings_for
from tests.webhooks.receiver import Receiver, Reply
from worker.settings import Settings
from worker.store.keys import Keys
from worker.store.outbound import OutboundEvent, OutboundLog, rfc3339
from worker.webhooks.dispatcher import Dispatcher
from worker.webhooks.runtime import build_dispatcher

SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcy0hIQ=="


class FakeClock:
    """Epoch seconds that move only when told (starts at the real time, so signatures verify until it jumps)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: int) -> None:
        self.now += ms / 1000

    def to_ms(self, at_ms: int) -> None:
        self.now = max(self.now, at_ms / 1000)


@dataclass
class Hooks:
    """One test's webhook world: a receiver, settings aimed at it, Redis, and a way to build dispatchers."""

    settings: Settings
    redis: redis.Redis
    keys: Keys
    receiver: Receiver

    def dispatcher(
        self,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
        draw: Callable[[], float] = lambda: 0.0,
        observe: Callable[[Any], None] = lambda record: None,
    ) -> Dispatcher:
        built = build_dispatcher(
            self.settings, self.redis, transport=transport, clock=clock, draw=draw, observe=observe, poll_s=0.02
        )
        assert built is not None
        return built

    def emit(self, ref: str | None, kind: str = "kyc.passed", n: int = 1, **payload: Any) -> list[str]:
        """Append ``n`` events about customer ``ref`` to the outbound stream (see ``emit``). Returns their ids."""
        return emit(self.redis, self.keys, ref, kind, n, **payload)


def emit(
    client: redis.Redis, keys: Keys, ref: str | None, kind: str = "kyc.passed", n: int = 1, **payload: Any
) -> list[str]:
    """Append ``n`` events about customer ``ref`` (one we hold: numbered in its sequence) to the outbound stream,
    as intake's reports do. Returns their ids."""
    log = OutboundLog(client, keys)
    if ref is not None:
        client.hsetnx(keys.events(ref), "held", "{}")
    ids = []
    for _ in range(n):
        seq = client.incr(f"{keys.prefix}:test-ids")
        event_id = f"{kind}:{ref or 'none'}:{seq}"
        now = rfc3339(int(time.time() * 1000))
        body = {"customer_id": None, "customer_ref": ref, "occurred_at": now, **payload}
        log.append(OutboundEvent(event_id, kind, body), ref=ref)
        ids.append(event_id)
    return ids


@pytest.fixture
def hooks(redis_url: str, key_prefix: str, request: pytest.FixtureRequest) -> Iterator[Hooks]:
    """Settings with ``PROVISIONER_WEBHOOK_*`` aimed at a fresh receiver; ``@pytest.mark.reply(fn)`` plans its
    answers, ``@pytest.mark.webhook_settings(**env)`` adds settings."""
    marker = request.node.get_closest_marker("webhook_settings")
    extra = marker.kwargs if marker else {}
    with Receiver(SECRET) as receiver:
        settings = settings_for(
            redis_url,
            key_prefix,
            PROVISIONER_WEBHOOK_URL=receiver.url,
            PROVISIONER_WEBHOOK_SECRET=SECRET,
            PROVISIONER_WEBHOOK_TIMEOUT_SECONDS="2",
            **extra,
        )
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        yield Hooks(settings, client, Keys(key_prefix), receiver)
        client.close()


def always(status: int, **headers: str) -> Callable[[dict[str, Any]], Reply]:
    return lambda event: Reply(status, dict(headers))
