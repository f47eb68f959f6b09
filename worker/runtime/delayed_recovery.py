"""Delayed messages that a live worker dropped are put back: dramatiq's consumer forgets its in-memory delay queue
when its Redis connection fails.

dramatiq on Redis fetches a delayed message (a retry waiting out its backoff, a ``send_with_options(delay=...)``)
from ``<queue>.DQ`` into an in-memory priority queue of the consumer thread; its id stays in this worker's ack set
until the eta passes and the message is moved to its queue. On a connection error, ``ConsumerThread.run``
replaces that priority queue (``self.delay_queue = PriorityQueue()``) without requeueing what it held. The ids
stay in the ack set of a worker that is alive, so dramatiq's maintenance, which requeues the ack sets of *dead*
workers only, never puts them back: the messages are gone until the process exits. The chaos run found it: a
reconcile retry dropped this way while Redis restarted left its customer waiting for the 15-minute failure
backstop, which the stale scan defers to.

``DelayedMessageRecovery`` remembers every delayed message this process's consumers take
(``before_delay_message``) until it is acked or nacked, and ``recover()`` requeues those whose eta passed more
than ``grace_ms`` ago, with dramatiq's own ``requeue`` command on this worker's ack set (which does nothing for a
message no longer in that set). The due scheduler calls it in every stale scan. A message that is only late — its
consumer unable to reach Redis — may be requeued once more than needed: a duplicate delivery, which every actor
here absorbs (events are deduplicated by id, reconciles are level-triggered).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

__all__ = ["DelayedMessageRecovery"]


@dataclass(frozen=True)
class _Held:
    queue: str
    """The delay queue the message was fetched from (``reconcile.DQ``): its ack set is keyed by it."""
    eta_ms: int


class DelayedMessageRecovery(Middleware):
    """Tracks the delayed messages this process holds and requeues those overdue by more than ``grace_ms``."""

    def __init__(self, *, grace_ms: int = 30_000, clock: Callable[[], float] = time.time) -> None:
        self._grace_ms = grace_ms
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._broker: Any = None

    def before_delay_message(self, broker: dramatiq.Broker, message: Any) -> None:
        redis_id = message.options.get("redis_message_id")
        if redis_id is None:  # not the Redis broker: nothing of this kind to recover
            return
        with self._lock:
            self._broker = broker
            self._held[str(redis_id)] = _Held(str(message.queue_name), int(message.options.get("eta") or 0))

    def after_ack(self, broker: dramatiq.Broker, message: Any) -> None:
        self._forget(message)

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        self._forget(message)

    def held(self) -> int:
        """How many delayed messages this process holds (waiting for their eta)."""
        with self._lock:
            return len(self._held)

    def recover(self) -> int:
        """Requeue every held delayed message whose eta passed more than ``grace_ms`` ago (its consumer dropped
        it). Returns how many were handed back. Raises the broker's connection errors (Redis away): the held
        messages are kept and tried again next time."""
        now_ms = int(self._clock() * 1000)
        with self._lock:
            broker = self._broker
            overdue = {rid: held for rid, held in self._held.items() if held.eta_ms + self._grace_ms < now_ms}
        if broker is None or not overdue:
            return 0
        by_queue: dict[str, list[str]] = defaultdict(list)
        for redis_id, held in overdue.items():
            by_queue[held.queue].append(redis_id)
        for queue, ids in by_queue.items():
            broker.do_requeue(queue, *ids)
        with self._lock:
            for redis_id in overdue:
                self._held.pop(redis_id, None)
        return len(overdue)

    def _forget(self, message: Any) -> None:
        redis_id = message.options.get("redis_message_id")
        if redis_id is not None:
            with self._lock:
                self._held.pop(str(redis_id), None)
