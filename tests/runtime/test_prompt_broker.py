"""An idle worker looks at its event queues every ``idle_poll_ms``, not after dramatiq's back-off of up to 1 s."""

from __future__ import annotations

import statistics
import threading
import time

import dramatiq
import redis
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.redis import RedisBroker

from worker.runtime.prompt_broker import PromptConsumer, PromptRedisBroker


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


def test_other_queues_keep_dramatiqs_consumer(redis_url: str, key_prefix: str) -> None:
    """Only the named queues get the prompt consumer: the delay queue of a prompt queue and every other queue keep
    dramatiq's own (fewer idle calls to Redis)."""
    broker = PromptRedisBroker(
        prompt_queues=("events",), idle_poll_ms=50, url=redis_url, namespace=f"{key_prefix}-dramatiq"
    )
    try:
        assert isinstance(broker.consume("events", timeout=1_000), PromptConsumer)
        assert not isinstance(broker.consume("events.DQ", timeout=1_000), PromptConsumer)
        assert not isinstance(broker.consume("reconcile", timeout=1_000), PromptConsumer)
    finally:
        broker.close()


class _CountingConsumer(Consumer):
    """A real consumer that counts its fetches (calls of ``__next__``)."""

    def __init__(self, inner: Consumer) -> None:
        self.inner, self.fetches = inner, 0

    def __next__(self) -> MessageProxy | None:
        self.fetches += 1
        return next(self.inner)

    def ack(self, message: MessageProxy) -> None:
        self.inner.ack(message)

    def nack(self, message: MessageProxy) -> None:
        self.inner.nack(message)

    def close(self) -> None:
        self.inner.close()


def test_an_idle_prompt_consumer_fetches_no_more_often_than_dramatiqs(redis_url: str, key_prefix: str) -> None:
    """Between fetches an idle prompt consumer only reads the queue's length: over 1.5 s idle it fetches about as
    often as dramatiq's back-off (some ten times), not every 50 ms (thirty)."""
    broker = PromptRedisBroker(
        prompt_queues=("events",), idle_poll_ms=50, url=redis_url, namespace=f"{key_prefix}-dramatiq"
    )
    try:
        counting = _CountingConsumer(RedisBroker.consume(broker, "events", 1, 50))  # dramatiq's own
        consumer = PromptConsumer(
            counting, broker.client, f"{broker.namespace}:events", poll_ms=50, idle_timeout_ms=1_000
        )
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert next(consumer) is None
        consumer.close()
    finally:
        broker.close()
    assert 3 <= counting.fetches <= 15, counting.fetches


class _CountingRedis(redis.Redis):
    """A real Redis client that counts the ``LLEN`` commands it sends."""

    llens = 0

    def llen(self, name: str) -> int:  # type: ignore[override]
        _CountingRedis.llens += 1
        return int(super().llen(name))


def test_a_consumer_with_its_prefetch_full_does_not_read_the_queue_length(redis_url: str, key_prefix: str) -> None:
    """While every prefetched message is still being worked (a busy worker, messages waiting behind them), the
    consumer cannot take another one: looking at the queue's length then is a wasted round trip, each time the
    consumer thread wakes. Once a message is acked, the next one is fetched at once."""
    broker = PromptRedisBroker(
        prompt_queues=("events",), idle_poll_ms=50, url=redis_url, namespace=f"{key_prefix}-dramatiq"
    )
    counting = _CountingRedis.from_url(redis_url)
    try:
        broker.declare_queue("events")
        for _ in range(3):
            broker.enqueue(dramatiq.Message(queue_name="events", actor_name="a", args=(), kwargs={}, options={}))
        consumer = PromptConsumer(
            RedisBroker.consume(broker, "events", 1, 50), counting, f"{broker.namespace}:events",
            poll_ms=50, idle_timeout_ms=1_000,
        )  # fmt: skip
        first = next(consumer)
        assert first is not None
        _CountingRedis.llens = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert next(consumer) is None  # the prefetch (one) is taken
        assert _CountingRedis.llens == 0
        consumer.ack(first)
        second = None
        deadline = time.monotonic() + 0.2
        while second is None and time.monotonic() < deadline:
            second = next(consumer)
        assert second is not None
        consumer.ack(second)
        consumer.close()
    finally:
        counting.close()
        broker.close()
