"""No event is lost when Redis restarts (durably, as the README requires) in the middle of deliveries, nor when
the dispatcher thread is stopped and another takes over; many customers are delivered concurrently."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from tests.core.harness import settings_for
from tests.private_redis import PrivateRedis
from tests.webhooks.conftest import SECRET, Hooks
from tests.webhooks.receiver import Receiver, Reply
from worker.store.keys import Keys
from worker.webhooks.store import DeliveryStore

pytestmark = pytest.mark.redis  # a redis-server of its own (``durable``)


@pytest.fixture
def durable() -> Iterator[PrivateRedis]:
    server = PrivateRedis(durable=True)
    server.start()
    yield server
    server.stop()


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_redis_restart_mid_delivery_loses_no_event(durable: PrivateRedis) -> None:
    """Redis is killed (-9) while 300 events of 30 customers are being delivered, then restarted from its AOF:
    every event still reaches the receiver, each customer's in sequence order (copies allowed, never a loss)."""
    with Receiver(SECRET, plan=lambda event: Reply(204, delay_s=0.005)) as receiver:
        settings = settings_for(
            durable.url, "dur", PROVISIONER_WEBHOOK_URL=receiver.url, PROVISIONER_WEBHOOK_SECRET=SECRET
        )
        client = redis.Redis.from_url(durable.url, decode_responses=True, socket_timeout=2)
        hooks = Hooks(settings, client, Keys("dur"), receiver)
        ids = [i for n in range(30) for i in hooks.emit(f"c{n:02d}", n=10)]
        dispatcher = hooks.dispatcher()
        dispatcher.start()
        try:
            wait_for(lambda: len(receiver.delivered()) >= 60, 20, "deliveries under way")
            durable.kill()
            time.sleep(0.5)
            durable.start()
            wait_for(lambda: set(ids) <= {r.webhook_id for r in receiver.delivered()}, 60, "every event delivered")
        finally:
            dispatcher.stop()
        assert DeliveryStore(client, Keys("dur")).status().undelivered == 0
        client.close()
    got = receiver.delivered()
    copies = Counter(r.webhook_id for r in got)
    assert set(copies) == set(ids)
    for n in range(30):
        seen = [r.event["sequence"] for r in got if r.event["customer_ref"] == f"c{n:02d}"]
        firsts = list(dict.fromkeys(seen))
        assert firsts == list(range(1, 11)), f"customer c{n:02d} out of order: {seen}"


def test_many_customers_are_delivered_concurrently(hooks: Hooks) -> None:
    """600 events of 200 customers, a receiver taking 20 ms per request: 16 connections deliver them far faster
    than one at a time would (12 s)."""
    hooks.receiver.plan = lambda event: Reply(204, delay_s=0.02)
    ids = [i for n in range(200) for i in hooks.emit(f"m{n:03d}", n=3)]
    dispatcher = hooks.dispatcher()
    started = time.monotonic()
    dispatcher.start()
    try:
        wait_for(lambda: len(hooks.receiver.delivered()) >= len(ids), 30, "every event delivered")
    finally:
        dispatcher.stop()
    elapsed = time.monotonic() - started
    assert sorted(r.webhook_id for r in hooks.receiver.delivered()) == sorted(ids)
    assert elapsed < 6, f"{len(ids) / elapsed:.0f} deliveries/s"
