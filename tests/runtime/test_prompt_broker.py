"""An idle worker looks at its event queues every ``idle_poll_ms``, not after dramatiq's back-off of up to 1 s."""

from __future__ import annotations

import statistics
import threading
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from worker.runtime.prompt_broker import PromptRedisBroker


def _pickup_after_idle_s(broker: RedisBroker, queue: str) -> float:
    """Seconds from sending a message, while its consumer sleeps idle (its back-off grown by ten empty fetches),
    until the consumer yields it."""
    consumer = broker.consume(queue, prefetch=1, timeout=1_000)
    sent: list[float] = []

    def send_when_idle() -> None:
        time.sleep(0.3)  # the consumer's sleeps have grown to their cap by now
        sent.append(time.monotonic())
        broker.enqueue(dramatiq.Message(queue_name=queue, actor_name="a", args=(), kwargs={}, options={}))

    try:
        for _ in range(10):
            assert next(consumer) is None
        sender = threading.Thread(target=send_when_idle)
        sender.start()
        while next(consumer) is None:
            pass
        received = time.monotonic()
        sender.join()
        return received - sent[0]
    finally:
        consumer.close()


def test_an_idle_event_queue_is_looked_at_within_the_poll_interval(redis_url: str, key_prefix: str) -> None:
    """A message sent to an idle prompt queue is fetched within about ``idle_poll_ms``; with dramatiq's own
    back-off (0.5–1 s sleeps) the median of five tries is about 0.37 s."""
    broker = PromptRedisBroker(
        prompt_queues=("events",), idle_poll_ms=50, url=redis_url, namespace=f"{key_prefix}-dramatiq"
    )
    try:
        broker.declare_queue("events")
        waits = [_pickup_after_idle_s(broker, "events") for _ in range(5)]
    finally:
        broker.close()
    assert statistics.median(waits) < 0.15, waits


def test_other_queues_keep_dramatiqs_back_off(redis_url: str, key_prefix: str) -> None:
    """Only the named queues are capped: the delay queue of a prompt queue and every other queue keep the timeout
    they are given (fewer idle calls to Redis)."""
    broker = PromptRedisBroker(
        prompt_queues=("events",), idle_poll_ms=50, url=redis_url, namespace=f"{key_prefix}-dramatiq"
    )
    try:
        assert broker.consume("events", timeout=1_000).timeout == 50  # type: ignore[attr-defined]
        assert broker.consume("events.DQ", timeout=1_000).timeout == 1_000  # type: ignore[attr-defined]
        assert broker.consume("reconcile", timeout=1_000).timeout == 1_000  # type: ignore[attr-defined]
    finally:
        broker.close()
