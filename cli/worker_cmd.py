"""``provisioner worker``: run the dramatiq worker in the foreground with processes and threads from settings."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import click

from cli.context import Context, pass_context
from worker.runtime.broker import QUEUES

__all__ = ["worker", "worker_argv"]

SHUTDOWN_TIMEOUT_MS = 60_000
"""How long a SIGTERM'd worker may finish the message in hand (far above the longest reconcile)."""


def worker_argv(processes: int, threads: int, queues: tuple[str, ...] = QUEUES) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dramatiq",
        "worker.runtime.entrypoint:setup",
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


@click.command()
@click.option("--processes", type=click.IntRange(1, 64), help="Worker processes [PROVISIONER_WORKER_PROCESSES].")
@click.option("--threads", type=click.IntRange(1, 256), help="Threads per process [PROVISIONER_WORKER_THREADS].")
@click.option("--queues", multiple=True, hidden=True, help="Consume only these queues (benchmarks).")
@pass_context
def worker(ctx: Context, processes: int | None, threads: int | None, queues: tuple[str, ...]) -> None:
    """Run the worker (foreground; SIGTERM finishes the messages in hand and requeues the rest). Metrics are
    served on PROVISIONER_METRICS_HOST:PROVISIONER_METRICS_PORT by a process of their own."""
    settings = ctx.settings
    processes = processes or settings.worker_processes
    threads = threads or settings.worker_threads
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        tempfile.gettempdir(), f"provisioner-metrics-{settings.metrics_port}"
    )
    shutil.rmtree(metrics_dir, ignore_errors=True)  # counters must not survive a restart
    os.makedirs(metrics_dir, exist_ok=True)
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
    argv = worker_argv(processes, threads, queues or QUEUES)
    os.execve(argv[0], argv, env)
