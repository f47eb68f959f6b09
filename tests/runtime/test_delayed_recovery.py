"""A delayed message that a live worker's consumer dropped when its Redis connection failed is put back and runs.

dramatiq's consumer replaces its in-memory delay queue on a connection error; the message's id stays in the ack
set of a worker that is alive, so nothing of dramatiq's puts it back (kept as a characterisation test: if the
message starts running without recovery, dramatiq fixed it).
"""

from __future__ import annotations

import contextlib
import threading
import time

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message
from prometheus_client import CollectorRegistry

from tests.core.harness import STATE_DIR
from tests.private_redis import PrivateRedis
from worker.runtime.broker import build_runtime
from worker.runtime.delayed_recovery import DelayedMessageRecovery
from worker.settings import Settings


def _delayed_message_across_a_redis_restart(
    server: PrivateRedis, recovery: DelayedMessageRecovery | None, *, wait_s: float
) -> list[int]:
    """Send a message delayed 3 s; once the consumer holds it, kill Redis and restart it (the consumer reconnects
    with an empty delay queue). Returns the runs seen within ``wait_s`` of the eta; with ``recovery``, its
    ``recover`` is called every 0.2 s, as the due scheduler's stale scan does every 30 s."""
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        url=server.url, namespace="delayed-test", middleware=[recovery] if recovery else []
    )
    runs: list[int] = []

    @dramatiq.actor(broker=broker, actor_name="later", queue_name="delayed")
    def later(n: int) -> None:
        runs.append(n)

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    client = redis.Redis.from_url(server.url)
    held_by_us = f"delayed-test:__acks__.{broker.broker_id}.delayed.DQ"
    stop = threading.Event()

    def keep_recovering() -> None:
        while recovery is not None and not stop.wait(0.2):
            with contextlib.suppress(redis.RedisError):
                recovery.recover()

    try:
        later.send_with_options(args=(7,), delay=3_000)
        eta = time.monotonic() + 3.0
        deadline = time.monotonic() + 2
        while client.scard(held_by_us) != 1:
            assert time.monotonic() < deadline, "the consumer never took the delayed message"
            time.sleep(0.02)
        server.kill()
        time.sleep(1.0)  # the consumer's next fetch fails: it drops its delay queue and restarts
        server.start()
        threading.Thread(target=keep_recovering, daemon=True).start()
        while not runs and time.monotonic() < eta + wait_s:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.stop(timeout=2_000)
        broker.close()
        client.close()
    return runs


@pytest.mark.timeout(60)
def test_a_dropped_delayed_message_is_requeued_and_runs(private_redis: PrivateRedis) -> None:
    recovery = DelayedMessageRecovery(grace_ms=500)
    runs = _delayed_message_across_a_redis_restart(private_redis, recovery, wait_s=15)
    assert runs == [7]
    assert recovery.held() == 0, "a message that ran is forgotten"


@pytest.mark.timeout(60)
def test_without_recovery_dramatiq_loses_it_while_the_worker_lives(private_redis: PrivateRedis) -> None:
    """The reason DelayedMessageRecovery exists: if this starts running the message, dramatiq fixed it."""
    assert _delayed_message_across_a_redis_restart(private_redis, None, wait_s=8) == []


def test_messages_not_yet_overdue_are_left_to_their_consumer(redis_url: str) -> None:
    """Only a message whose eta passed more than the grace ago is handed back; acked ones are forgotten."""
    now = [1_000.0]
    recovery = DelayedMessageRecovery(grace_ms=30_000, clock=lambda: now[0])
    broker = RedisBroker(url=redis_url, namespace="delayed-grace")  # type: ignore[no-untyped-call]
    try:
        due_soon = _delayed(eta_ms=1_000_000 + 10_000, redis_id="a")
        acked = _delayed(eta_ms=1_000_000 - 60_000, redis_id="b")
        for message in (due_soon, acked):
            recovery.before_delay_message(broker, message)
        recovery.after_ack(broker, acked)
        assert recovery.recover() == 0 and recovery.held() == 1
        now[0] += 41.0  # 31 s past due_soon's eta
        assert recovery.recover() == 1 and recovery.held() == 0
    finally:
        broker.close()


def test_the_worker_runtime_recovers_with_every_stale_scan(redis_url: str, key_prefix: str) -> None:
    """``build_runtime`` installs the middleware and the due scheduler's stale scan calls it."""
    settings, _ = Settings.from_env(
        {
            "REDIS_URL": redis_url,
            "PROVISIONER_REDIS_PREFIX": key_prefix,
            "PROVISIONER_STATE_DIR": str(STATE_DIR / key_prefix),
        }
    )
    runtime = build_runtime(settings, registry=CollectorRegistry())
    try:
        (recovery,) = [m for m in runtime.broker.middleware if isinstance(m, DelayedMessageRecovery)]
        recovery.before_delay_message(runtime.broker, _delayed(eta_ms=0, redis_id="long-overdue"))
        runtime.scheduler.tick()  # the first tick runs the stale scan
        assert recovery.held() == 0
    finally:
        runtime.close()


def _delayed(*, eta_ms: int, redis_id: str) -> Message[None]:
    return Message(
        queue_name="reconcile.DQ",
        actor_name="reconcile_customer",
        args=("c0",),
        kwargs={},
        options={"eta": eta_ms, "redis_message_id": redis_id},
    )
