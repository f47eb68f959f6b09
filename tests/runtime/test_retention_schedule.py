"""The scheduler runs the retention erasure on its stale-scan cadence, and an erasure failure never stops it
sending due customers."""

from __future__ import annotations

import redis

from worker.runtime.scheduler import DueScheduler
from worker.store.due import DueSchedule
from worker.store.keys import Keys


def test_the_sweep_erases_and_survives_a_failing_erasure(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    due = DueSchedule(client, Keys(key_prefix))
    calls: list[int] = []
    sent: list[str] = []

    def erase(now_ms: int) -> int:
        calls.append(now_ms)
        if len(calls) == 2:
            raise redis.ConnectionError("gone")
        return 1

    clock = [1_000.0]
    scheduler = DueScheduler(lambda: due, sent.append, clock=lambda: clock[0], sweep_every_s=30, erase_expired=erase)
    scheduler.tick()
    scheduler.tick()  # within the sweep period: no second erasure
    assert calls == [1_000_000]
    clock[0] += 30
    due.backstop("r-due", 1_000_000)
    scheduler.tick()  # the erasure fails: the due customer is still sent
    assert calls == [1_000_000, 1_030_000] and sent == ["r-due"]
