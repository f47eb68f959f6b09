"""A retry whose enqueue fails because Redis is away is not lost: the original stays unacked until it is stored.

dramatiq's own ``Retries`` loses it (measured: the message is acked once Redis is back, and never runs again).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries

from tests.private_redis import PrivateRedis
from worker.runtime.durable_retries import DurableRetries


def _run_once_failing_while_redis_restarts(server: PrivateRedis, retries: Any, *, wait_s: float) -> list[int]:
    """An actor whose first attempt takes Redis down (restarted a second later) and then fails; the attempts it
    saw within ``wait_s`` (it returns as soon as there are two)."""
    broker = RedisBroker(url=server.url, namespace="durable-test", middleware=[retries])  # type: ignore[no-untyped-call]
    attempts: list[int] = []
    restarted = threading.Event()

    def restart_soon() -> None:
        time.sleep(1.0)
        server.start()
        restarted.set()

    @dramatiq.actor(broker=broker, actor_name="flaky", queue_name="durable")
    def flaky(n: int) -> None:
        attempts.append(n)
        if len(attempts) == 1:
            server.kill()
            threading.Thread(target=restart_soon, daemon=True).start()
            raise RuntimeError("first attempt fails while Redis is away")

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        flaky.send(7)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and len(attempts) < 2:
            time.sleep(0.1)
        assert restarted.wait(5)
    finally:
        worker.stop(timeout=2_000)
        broker.close()
    return attempts


@pytest.mark.timeout(90)
def test_the_retry_is_stored_once_redis_is_back(private_redis: PrivateRedis) -> None:
    retries = DurableRetries(min_backoff=10, max_backoff=50)
    attempts = _run_once_failing_while_redis_restarts(private_redis, retries, wait_s=50)  # ~8 s here
    assert attempts == [7, 7], "the retry ran after Redis came back"


@pytest.mark.timeout(60)
def test_dramatiqs_own_retries_lose_it(private_redis: PrivateRedis) -> None:
    """The reason DurableRetries exists: if this starts passing with two attempts, dramatiq fixed it."""
    retries = Retries(min_backoff=10, max_backoff=50)  # type: ignore[no-untyped-call]
    attempts = _run_once_failing_while_redis_restarts(private_redis, retries, wait_s=20)
    assert attempts == [7]


def test_a_held_back_retry_keeps_the_backoff_retries_would_have_used(redis_url: str) -> None:
    """Review finding: retries held back by an outage all used the minimum backoff and fired together."""
    broker = RedisBroker(url=redis_url, namespace="durable-delay")  # type: ignore[no-untyped-call]
    retries = DurableRetries(min_backoff=100, max_backoff=60_000)

    @dramatiq.actor(broker=broker, actor_name="slow_backoff", queue_name="durable", min_backoff=1_000)
    def slow_backoff() -> None: ...

    message = slow_backoff.message().copy(options={"retries": 4})  # the fourth retry: 1000 * 2**3 * U(1, 2)
    try:
        delays = {retries._delay(broker, message, RuntimeError("x")) for _ in range(20)}
        assert all(8_000 <= d <= 16_000 for d in delays), delays
        assert len(delays) > 1, "jittered"
        assert retries._delay(broker, message, dramatiq.Retry(delay=1234)) == 1234
    finally:
        broker.close()
