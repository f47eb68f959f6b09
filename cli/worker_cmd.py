"""``provisioner worker``: run the dramatiq worker in the foreground with processes and threads from settings."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from typing import Any

import click
import redis

from cli.context import Context, pass_context
from worker.runtime.queues import QUEUES
from worker.settings import Environment, Settings
from worker.store.epoch import NamingMismatch, StateLost

__all__ = ["worker", "worker_argv"]

SHUTDOWN_TIMEOUT_MS = 60_000
"""How long a SIGTERM'd worker may finish the message in hand (far above the longest reconcile)."""


ENTRYPOINT = "worker.runtime.entrypoint:setup"
"""What the dramatiq CLI calls in each worker process to build its broker and actors."""


def worker_argv(
    processes: int, threads: int, queues: tuple[str, ...] = QUEUES, *, entrypoint: str = ENTRYPOINT
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dramatiq",
        entrypoint,
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--queues",
        *queues,
        "--worker-shutdown-timeout",
        str(SHUTDOWN_TIMEOUT_MS),
        "--skip-logging",
    ]


_METRIC_FILE = re.compile(r"^[a-z]+(_[a-z]+)*_\d+\.db$")
"""The name of a file prometheus-client's multiprocess mode writes: ``<type>_<pid>.db`` (e.g. counter_812.db,
gauge_livesum_812.db)."""


def prepare_metrics_dir(path: str, *, named_by_operator: bool) -> None:
    """Make ``path`` ready for the worker processes' metric files: counters must not survive a restart.

    Our own folder (the default, in the temp directory) is emptied. A folder the operator named with
    ``PROMETHEUS_MULTIPROC_DIR`` may hold other things: only the metric files of earlier runs (``<type>_<pid>.db``)
    are deleted from it. Either is created when missing. Raises ``OSError`` when it cannot be.
    """
    if named_by_operator:
        if os.path.isdir(path):
            for entry in os.scandir(path):
                if entry.is_file(follow_symlinks=False) and _METRIC_FILE.match(entry.name):
                    os.unlink(entry.path)
    else:
        shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


STATE_LOST_EXIT = 3
"""Exit status of ``--check-state`` when the state was found lost (systemd: ``RestartPreventExitStatus=3``)."""
HALTED_POLL_S = 10.0


def check_durability(settings: Settings, redis_client: Any) -> str | None:
    """Why Redis cannot be trusted to keep what it acknowledged (``None`` when it can): no ``appendonly`` (a
    restart loses what it acknowledged), or a ``maxmemory-policy`` other than ``noeviction`` (when memory runs
    short Redis drops keys, ours among them: a volatile-* policy picks the Special Account's day ledger first)."""
    try:
        persistence = redis_client.info("persistence")
        memory = redis_client.info("memory")
    except redis.RedisError as exc:
        return f"cannot read Redis' persistence settings: {exc}"
    problems = []
    if int(persistence.get("aof_enabled", 0)) != 1:
        problems.append(
            "Redis runs without appendonly: a restart loses what it acknowledged (the workers would then halt for "
            "`provisioner recover`). Set appendonly yes"
        )
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        problems.append(
            f"Redis' maxmemory-policy is {policy}: when memory runs short it evicts keys, ours among them (a daily "
            "funding cap, a customer's record), silently. Set maxmemory-policy noeviction"
        )
    if not problems:
        return None
    return "; ".join(problems) + ", or PROVISIONER_ALLOW_VOLATILE_REDIS=true to accept it"


def wait_for_sound_state(ctx: Context, *, once: bool) -> bool:
    """Before any worker starts: the state in Redis is the one this deployment left (or a fresh one is made).
    While it is not, say why, serve ``provisioner_state_lost`` on the metrics port and look again every 10 s
    (an operator's ``provisioner recover`` ends the wait). Returns False at once with ``once``."""
    app = ctx.runtime.app
    gauge: Any = None
    while True:
        try:
            app.state.establish(init=True)
            return True
        except NamingMismatch as exc:
            raise click.ClickException(str(exc)) from None
        except StateLost as exc:
            click.echo(
                f"state lost ({exc.kind}): {exc.reason}\n"
                "  no worker starts until an operator has checked why and run `provisioner recover`",
                err=True,
            )
            if once:
                return False
            if gauge is None:
                gauge = _serve_halted_metrics(ctx.settings)
            gauge.labels(exc.kind).set(1)
        except redis.RedisError as exc:
            click.echo(f"Redis is not answering ({exc}); trying again", err=True)
        time.sleep(HALTED_POLL_S)


def _serve_halted_metrics(settings: Settings) -> Any:
    """The metrics endpoint of a halted worker: Redis' gauges and ``provisioner_state_lost``."""
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    from worker.runtime.metrics_collector import RedisCollector

    registry = CollectorRegistry()
    registry.register(RedisCollector(settings, list(QUEUES)))
    gauge = Gauge(
        "provisioner_state_lost",
        "1 while this worker refuses to start: the state was lost.",
        ["kind"],
        registry=registry,
    )
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    return gauge


@click.command()
@click.option("--processes", type=click.IntRange(1, 64), help="Worker processes [PROVISIONER_WORKER_PROCESSES].")
@click.option("--threads", type=click.IntRange(1, 256), help="Threads per process [PROVISIONER_WORKER_THREADS].")
@click.option("--queues", multiple=True, hidden=True, help="Consume only these queues (benchmarks).")
@click.option(
    "--entrypoint",
    default=ENTRYPOINT,
    hidden=True,
    help="The module:function that sets up each worker process (benchmarks: bench/floor.py adds its no-op actor).",
)
@click.option(
    "--check-state",
    is_flag=True,
    help="Only check that the state in Redis is sound (exit 0) or was lost (exit 3), then stop.",
)
@pass_context
def worker(
    ctx: Context,
    processes: int | None,
    threads: int | None,
    queues: tuple[str, ...],
    entrypoint: str,
    check_state: bool,
) -> None:
    """Run the worker (foreground; SIGTERM finishes the messages in hand and requeues the rest). Metrics are
    served on PROVISIONER_METRICS_HOST:PROVISIONER_METRICS_PORT by a process of their own.

    Before starting, the state in Redis is checked against this host's mirror and the exchange: a lost or
    rolled-back state keeps the worker halted (serving provisioner_state_lost) until `provisioner recover`."""
    settings = ctx.settings
    named = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if named:  # prometheus-client writes into it from this process' first metric on (building the runtime)
        os.makedirs(named, exist_ok=True)
    problem = check_durability(settings, ctx.runtime.app.redis)
    if problem is not None:
        if settings.environment is Environment.PRODUCTION and not settings.allow_volatile_redis:
            raise click.ClickException(problem)
        click.echo(f"warning: {problem}", err=True)
    if not wait_for_sound_state(ctx, once=check_state):
        sys.exit(STATE_LOST_EXIT)
    if check_state:
        click.echo("state: sound")
        return
    processes = processes or settings.worker_processes
    threads = threads or settings.worker_threads
    metrics_dir = named or os.path.join(tempfile.gettempdir(), f"provisioner-metrics-{settings.metrics_port}")
    prepare_metrics_dir(metrics_dir, named_by_operator=bool(named))
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "dramatiq_queue_prefetch": str(threads),
        "dramatiq_delay_queue_prefetch": str(threads * 50),
    }
    click.echo(
        f"starting {processes} worker process(es) x {threads} thread(s); metrics on "
        f"http://{settings.metrics_host}:{settings.metrics_port}/metrics",
        err=True,
    )
    argv = worker_argv(processes, threads, queues or QUEUES, entrypoint=entrypoint)
    os.execve(argv[0], argv, env)
