"""A dramatiq Redis broker whose event queues are looked at promptly when idle.

dramatiq's Redis consumer does not block on an empty queue: it sleeps, doubling the sleep on every empty fetch up
to the worker timeout (1 s by default, jittered to 0.5–1 s). A message that reaches an idle worker therefore
waited about 0.4 s on average before a thread saw it — more than the whole bookkeeping of a customer. Here the
consumers of the event queues (``events``, ``urgent``) cap that sleep at ``idle_poll_ms``; every other queue
(``reconcile``, whose messages are wake-ups scheduled to the second, and the delay queues) keeps dramatiq's.

The price is idle fetches: each capped consumer calls Redis about ``1000 / (0.75 × idle_poll_ms)`` times a second
while its queue is empty (27 at 50 ms), none while it is busy.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from dramatiq.brokers.redis import RedisBroker

__all__ = ["PromptRedisBroker"]


class PromptRedisBroker(RedisBroker):
    """``RedisBroker`` whose consumers of ``prompt_queues`` sleep at most ``idle_poll_ms`` on an empty queue."""

    def __init__(self, *, prompt_queues: Collection[str], idle_poll_ms: int, **options: Any) -> None:
        super().__init__(**options)  # type: ignore[no-untyped-call]
        self.prompt_queues = frozenset(prompt_queues)
        self.idle_poll_ms = idle_poll_ms

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        """A consumer of ``queue_name``; its idle sleep is capped at ``idle_poll_ms`` for a prompt queue (the
        delay queue of a prompt queue is not one: its messages wait for their time anyway)."""
        if queue_name in self.prompt_queues:
            timeout = min(timeout, self.idle_poll_ms)
        return super().consume(queue_name, prefetch, timeout)
