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

It also runs dramatiq's queue maintenance on a clock instead of by chance. Maintenance (part of every broker call's
Lua script when drawn) puts a dead worker's unacked messages back on a queue, but only on the queue of the call
that drew it. With a chance per call, an idle consumer (one call a second) drew it for its queue every ten seconds
on average and sometimes not for thirty: a message in the hands of a worker killed mid-run waited that long past
the heartbeat time-out (measured: 17 s against a 2 s bound). Here the first call on a queue after
``maintenance_interval_ms`` since that queue's last maintenance in this process runs it: a dead worker's messages
are back within the heartbeat time-out plus one interval plus one idle back-off, every time; a busy process runs
it less often than one call in ten did. This overrides two private methods of dramatiq's ``RedisBroker``
(``_dispatch``, ``_should_do_maintenance``, as in the locked 2.2.1): ``tests/runtime/test_dead_worker_redelivery.py``
fails if an upgrade changes them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

import redis
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.redis import MAINTENANCE_COMMAND_BLACKLIST, RedisBroker
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
        if self._saturated():
            # Every prefetched message is still being worked: the wrapped consumer takes no new one (it only sleeps
            # its short back-off), so the queue's length would be a wasted round trip.
            return next(self._inner)
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

    def _saturated(self) -> bool:
        """Whether the wrapped consumer holds as many unacked messages as it may prefetch (dramatiq's Redis
        consumer's ``outstanding_message_count`` and ``prefetch``; a consumer without them never is)."""
        outstanding = getattr(self._inner, "outstanding_message_count", None)
        prefetch = getattr(self._inner, "prefetch", None)
        return isinstance(outstanding, int) and isinstance(prefetch, int) and outstanding >= prefetch

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
    (the delay queue of a prompt queue is not one: its messages wait for their time anyway), and whose queue
    maintenance runs at most and at least every ``maintenance_interval_ms`` per queue (at the first call on the
    queue after it) when that is given, instead of by dramatiq's ``maintenance_chance``."""

    def __init__(
        self,
        *,
        prompt_queues: Collection[str],
        idle_poll_ms: int,
        maintenance_interval_ms: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)  # type: ignore[no-untyped-call]
        self.prompt_queues = frozenset(prompt_queues)
        self.idle_poll_ms = idle_poll_ms
        self._maintenance_interval_s = None if maintenance_interval_ms is None else maintenance_interval_ms / 1000
        self._maintained_at: dict[str, float] = {}
        self._calling = threading.local()  # the queue of the broker call this thread is making

    def _dispatch(self, command: str) -> Callable[..., Any]:
        dispatch: Callable[..., Any] = super()._dispatch(command)  # type: ignore[no-untyped-call]

        def do_dispatch(queue_name: str, *args: Any) -> Any:
            self._calling.queue = queue_name
            return dispatch(queue_name, *args)

        return do_dispatch

    def _should_do_maintenance(self, command: str) -> int:
        if self._maintenance_interval_s is None:
            return int(super()._should_do_maintenance(command))
        queue = getattr(self._calling, "queue", "")
        now = time.monotonic()
        if command in MAINTENANCE_COMMAND_BLACKLIST or now - self._maintained_at.get(queue, -1e9) < (
            self._maintenance_interval_s
        ):
            return 0
        self._maintained_at[queue] = now  # two threads racing here both run it: harmless (the script is atomic)
        return 1

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
