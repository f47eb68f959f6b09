"""A real ``provisioner worker`` process killed with -9 in the middle of its webhook deliveries: after a restart
every event arrives, each customer's in sequence order (the attempts in flight are sent again after their lease)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis

from tests.runtime.procs import WorkerProcess, worker_env
from tests.runtime.test_processes import sandbox  # noqa: F401 - the fixture
from tests.webhooks.conftest import SECRET, emit
from tests.webhooks.receiver import Receiver, Reply
from worker.store.keys import Keys
from worker.webhooks.store import DeliveryStore

pytestmark = pytest.mark.slow


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_mid_delivery_loses_nothing(redis_url: str, key_prefix: str, sandbox, tmp_path: Path) -> None:  # noqa: F811
    with Receiver(SECRET, plan=lambda event: Reply(204, delay_s=0.03)) as receiver:
        env = worker_env(
            redis_url,
            key_prefix,
            sandbox.url,
            PROVISIONER_WEBHOOK_URL=receiver.url,
            PROVISIONER_WEBHOOK_SECRET=SECRET,
            PROVISIONER_WEBHOOK_TIMEOUT_SECONDS="1",
            PROVISIONER_WEBHOOK_CONCURRENCY="8",
        )
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        ids = [i for n in range(20) for i in emit(client, Keys(key_prefix), f"k{n:02d}", n=10)]
        worker = WorkerProcess(env, tmp_path / "worker.log", processes=1, threads=2)
        try:
            worker.start()
            (victim,) = worker.workers()
            wait_until(lambda: len(receiver.delivered()) >= 40, 30, "deliveries under way")
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            worker.wait(30)  # the master stops when a worker dies; a supervisor restarts it
            worker.start()
            wait_until(lambda: set(ids) <= {r.webhook_id for r in receiver.delivered()}, 60, "every event")
            took = time.monotonic() - killed_at
        finally:
            worker.stop()
        assert DeliveryStore(client, Keys(key_prefix)).status().undelivered == 0
        client.close()
    print(f"kill -9 to every event delivered: {took:.1f}s")
    got = receiver.delivered()
    assert all(r.verified for r in got)
    for n in range(20):
        firsts = list(dict.fromkeys(r.event["sequence"] for r in got if r.event["customer_ref"] == f"k{n:02d}"))
        assert firsts == list(range(1, 11)), f"customer k{n:02d}: {firsts}"
