"""A dramatiq Redis broker whose event queues are looked at promptly when idle, at little cost.

dramatiq's Redis consumer does not block on an empty queue: after each empty fetch (a Lua script that also beats
the worker's heartbeat) it sleeps, doubling the sleep up to the worker timeout (1 s, jittered to 0.5–1 s). An
event reaching an idle worker therefore waited about 0.4 s on average before a thread saw it — more than all of a
customer's bookkeeping. Fetching every 50 ms instead would triple an idle worker's CPU (about 100 fetches a second
for two processes: measured 30 → 97 ms of CPU per second).

So the consumers of the event queues (``events``, ``urgent``) keep dramatiq's back-off for the fetch, and in
between look at the queue's length (``LLEN``, one plain command) every ``idle_poll_ms``: when something waits, they
fetch at once. Every other queue (``reconcile``, whose messages are wake-ups scheduled to the second, and the delay
queues) keeps dramatiq's consumer as it is. The wrapped consumer still fetches at least once per back-off, so the
heartbeat and queue maintenance run as often as before. Measured idle (two processes, 2 busy vCPUs): 30 ms of CPU
per second with dramatiq's consumer, 60 with this one at 50 ms, 50 at 100 ms.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from typing import Any

import redis
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed

__all__ = ["PromptConsumer", "PromptRedisBroker"]


class PromptConsumer(Consumer):
    """Wraps a dramatiq Redis consumer (whose own idle sleep is at most ``poll_ms``): after an empty fetch, it looks
    at the queue's length every ``poll_ms`` and fetches as soon as a message waits, or when dramatiq's back-off
    (up to ``idle_timeout_ms``) is over. Raises ``ConnectionClosed`` when Redis cannot be reached, as dramatiq's
    consumer does (its consumer thread then reconnects)."""

    def __init__(self, inner: Consumer, client: Any, queue_key: str, *, poll_ms: int, idle_timeout_ms: int) -> None:
        self._inner = inner
        self._client = client
        self._queue_key = queue_key
        self._poll_s = poll_ms / 1000
        self._idle_timeout_ms = idle_timeout_ms
        self._misses = 0
        self._quiet_until = 0.0

    def __next__(self) -> MessageProxy | None:
        now = time.monotonic()
        if now < self._quiet_until:
            if not self._waiting():
                time.sleep(min(self._poll_s, self._quiet_until - now))
                return None
            self._quiet_until = 0.0
        message = next(self._inner)
        if message is None:
            self._misses, backoff_ms = compute_backoff(self._misses, max_backoff=self._idle_timeout_ms)
            self._quiet_until = time.monotonic() + backoff_ms / 1000
        else:
            self._misses, self._quiet_until = 0, 0.0
        return message

    def _waiting(self) -> bool:
        try:
            return bool(self._client.llen(self._queue_key))
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def ack(self, message: MessageProxy) -> None:
        self._inner.ack(message)

    def nack(self, message: MessageProxy) -> None:
        self._inner.nack(message)

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        self._inner.requeue(messages)

    def close(self) -> None:
        self._inner.close()


class PromptRedisBroker(RedisBroker):
    """``RedisBroker`` whose consumers of ``prompt_queues`` are ``PromptConsumer``s polling every ``idle_poll_ms``
    (the delay queue of a prompt queue is not one: its messages wait for their time anyway)."""

    def __init__(self, *, prompt_queues: Collection[str], idle_poll_ms: int, **options: Any) -> None:
        super().__init__(**options)  # type: ignore[no-untyped-call]
        self.prompt_queues = frozenset(prompt_queues)
        self.idle_poll_ms = idle_poll_ms

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name not in self.prompt_queues or timeout <= self.idle_poll_ms:
            return super().consume(queue_name, prefetch, timeout)
        inner = super().consume(queue_name, prefetch, self.idle_poll_ms)
        return PromptConsumer(
            inner,
            self.client,
            f"{self.namespace}:{queue_name}",
            poll_ms=self.idle_poll_ms,
            idle_timeout_ms=timeout,
        )
