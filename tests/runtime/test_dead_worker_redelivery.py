"""A worker killed with messages in hand: another process puts them back within the recovery bound, every time.

dramatiq puts a dead worker's unacked messages back only in *maintenance*, run on a broker call that draws it
(``maintenance_chance``), and only for the queue of that call. An idle consumer calls Redis about once a second,
so a chance of one in ten left a message waiting 5–30 s past the heartbeat time-out (a CI run: 36 s after a
kill -9, against a promised 10 + lock time-out).
"""

from __future__ import annotations

import time

import dramatiq

from worker.runtime.broker import recovery_tuning
from worker.runtime.prompt_broker import PromptRedisBroker

RECOVERY_S = 2


def _broker(redis_url: str, namespace: str) -> PromptRedisBroker:
    return PromptRedisBroker(
        prompt_queues=("events",), idle_poll_ms=50, url=redis_url, namespace=namespace, **recovery_tuning(RECOVERY_S)
    )


def _redelivered_after_s(redis_url: str, namespace: str, queue: str) -> float:
    """A message fetched by a worker that then dies (never acks, never calls Redis again): seconds from its death
    until a live worker's idle consumer of the queue yields it."""
    dead = _broker(redis_url, namespace)
    live = _broker(redis_url, namespace)
    try:
        dead.declare_queue(queue)
        live.declare_queue(queue)
        dead.enqueue(dramatiq.Message(queue_name=queue, actor_name="a", args=(), kwargs={}, options={}))
        held = dead.consume(queue, prefetch=1, timeout=1_000)
        while next(held) is None:
            pass
        died_at = time.monotonic()  # from here on the dead worker's heartbeat ages
        consumer = live.consume(queue, prefetch=1, timeout=1_000)
        while time.monotonic() - died_at < 30:
            if next(consumer) is not None:
                return time.monotonic() - died_at
        return float("inf")
    finally:
        live.close()
        dead.close()


def test_a_dead_workers_message_is_put_back_within_the_recovery_bound(redis_url: str, key_prefix: str) -> None:
    """On an event queue (prompt consumer), a plain queue and a delay queue, three times each: all within
    ``recovery_seconds`` (the heartbeat expires after half of it; maintenance must follow within the other half)."""
    waits = {
        queue: [_redelivered_after_s(redis_url, f"{key_prefix}-dq{queue}{i}", queue) for i in range(3)]
        for queue in ("events", "reconcile", "reconcile.DQ")
    }
    assert all(w <= RECOVERY_S + 0.5 for ws in waits.values() for w in ws), waits
