"""``provisioner top``: the overview read from real Redis, its frame at 80 and 120 columns, and ``--once``."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from cli.top_view import render
from sandbox import SandboxConfig
from tests.cli.test_cli import env_of, run
from tests.cli.test_startup import loaded_after
from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig
from worker.ratelimit import PoolState, SharedRateLimiter
from worker.runtime.broker import QUEUES
from worker.runtime.overview import BlockedStep, InFlight, Letter, Overview, QueueLine, Reader, WebhookBacklog


def test_the_overview_reads_blocked_customers_dead_letters_and_a_blocked_pool_from_redis(
    redis_url: str, key_prefix: str
) -> None:
    config = SandboxConfig(initial_balances={"MAIN": {"USDT": "300"}, "TRADE": {}})
    with WorkerRig(redis_url, key_prefix, config=config) as rig:
        empty = Reader(rig.runtime).read()
        assert (empty.blocked_count, empty.dead_letter_count, empty.in_flight_count) == (0, 0, 0)
        assert [q.name for q in empty.queues] == list(QUEUES)
        assert {p.pool for p in empty.pools} == {"Broker", "Management"}
        assert all(p.blocked_for_ms == 0 for p in empty.pools) and empty.webhooks is None
        for customer in ("top-a", "top-b"):  # 2 x 250 USDT from 300: one is short of funds
            ev = events_for(customer)
            rig.publisher.publish(ev["created"])
            rig.publisher.publish(ev["kyc"])
        rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="one customer blocked: short of funds")
        app = rig.runtime.app
        SharedRateLimiter(app.redis, app.keys, {}).block("Broker", 30_000)  # as after a 429
        seen = Reader(rig.runtime).read()
        assert seen.blocked_count == 1 and len(seen.blocked) == 1
        (step,) = seen.blocked
        assert "account.available.amount" in step.reason and step.ref in {
            app.policy.naming.customer_ref(c) for c in ("top-a", "top-b")
        }
        (letter,) = rig.runtime.dead_letters().list()
        assert seen.dead_letter_count == 1 and seen.dead_letters[0].message_id == letter.message_id
        assert sum(q.dead for q in seen.queues) == 1
        broker = next(p for p in seen.pools if p.pool == "Broker")
        assert 25_000 < broker.blocked_for_ms <= 30_000


def test_top_once_prints_one_frame_naming_the_dead_letter_whole(redis_url: str, key_prefix: str) -> None:
    config = SandboxConfig(initial_balances={"MAIN": {"USDT": "0"}, "TRADE": {}})
    with WorkerRig(redis_url, key_prefix, config=config) as rig:
        ev = events_for("top-c")
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["kyc"])
        rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="top-c blocked")
        (letter,) = rig.runtime.dead_letters().list()
        code, out, _ = run({**env_of(rig, "http://127.0.0.1:9"), "COLUMNS": "80"}, "top", "--once")
        assert code == 0, out
        assert letter.message_id in out and "dead letters (dlq show / replay): 1" in out
        assert "blocked customers (customer retry / settle-transfer): 1" in out
        assert max(len(line) for line in out.splitlines()) <= 80


def _overview(now_ms: int) -> Overview:
    ref = "c07383852ab7caca3ae62"
    reason = "StepsBlocked: transfer acme-7-kyc_approved#0: account.available.amount is not enough " * 2
    return Overview(
        taken_ms=now_ms,
        prefix="provisioner",
        halted=True,
        workers_alive=0,
        due_backlog=12,
        unstored=3,
        queues=tuple(QueueLine(q, 1500, 125.0, 2) for q in QUEUES),
        in_flight_count=40,
        in_flight=(InFlight(ref, now_ms - 7_000),),
        blocked_count=1,
        blocked=(BlockedStep(ref, "fund:acme-7-kyc_approved#0", reason, now_ms - 60_000, True),),
        dead_letter_count=9,
        dead_letters=(
            Letter("44a422a9-bded-46a5-b442-e9b73331b566", "reconcile_customer", "retryable", now_ms, reason),
        ),
        pools=(PoolState("Broker", 4_200, 12_000), PoolState("Management", 0, 0)),
        webhooks=WebhookBacklog(undelivered=17, oldest_age_s=3_700.0, dead_letters=1),
    )


@pytest.mark.parametrize("width", [80, 120])
def test_the_frame_fits_the_width_and_never_cuts_an_id(width: int) -> None:
    out = io.StringIO()
    Console(file=out, width=width, highlight=False, color_system=None).print(render(_overview(1_796_216_805_026)))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    for whole in ("44a422a9-bded-46a5-b442-e9b73331b566", "c07383852ab7caca3ae62", "fund:acme-7-kyc_approved#0"):
        assert whole in text
    assert "HALTED" in text and "workers 0" in text and "due 12  unstored 3" in text
    assert "in flight (writes whose outcome is not yet known): 40, the oldest 1 shown" in text
    assert "dead letters (dlq show / replay): 9, the latest 1 shown" in text
    assert "manual decision" in text and "1h01m" in text and "2m05s" in text and "12s" in text
    for queue in QUEUES:
        assert queue in text
    assert "webhooks undelivered 17, oldest 1h01m, dead letters 1" in text


def test_the_command_module_loads_nothing_heavy_until_it_runs() -> None:
    assert loaded_after("import cli.top_cmd") == []


def test_the_frame_is_a_pure_function_of_the_overview() -> None:
    now = int(time.time() * 1000)
    frames = []
    for _ in range(2):
        out = io.StringIO()
        Console(file=out, width=100, color_system=None).print(render(_overview(now)))
        frames.append(out.getvalue())
    assert frames[0] == frames[1]


def test_top_refreshes_every_interval_until_interrupted(redis_url: str, key_prefix: str) -> None:
    """Without --once, a frame each --interval (one after another into a pipe); Ctrl-C ends it with status 0."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "REDIS_URL": redis_url, "PROVISIONER_REDIS_PREFIX": key_prefix, "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "top", "--interval", "0.5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    frames, stamps, deadline = 0, [], time.monotonic() + 60  # a loaded machine may take long to start it
    while frames < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "rate-limit pools" in line:
            frames += 1
            stamps.append(time.monotonic())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)  # it exits in about 0.4 s
    assert frames == 3 and proc.returncode == 0, err
    assert stamps[2] - stamps[0] >= 0.9  # two intervals of 0.5 s between the first and the third frame
