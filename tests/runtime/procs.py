"""Real worker processes (``provisioner worker``: the dramatiq CLI with forked processes) for crash tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from tests.core.harness import STATE_DIR
from tests.private_redis import free_port
from worker.publish import Publisher
from worker.runtime.broker import Runtime, build_runtime
from worker.settings import Settings


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def thread_count(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return 0


class WorkerProcess:
    """``provisioner worker`` in its own session, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path, *, processes: int = 1, threads: int = 2) -> None:
        self.env = env
        self.log = log
        self.argv = [sys.executable, "-m", "cli", "worker", "--processes", str(processes), "--threads", str(threads)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path(__file__).parents[2],
        )
        out.close()

    def workers(self, timeout: float = 60) -> list[int]:
        """PIDs of the dramatiq worker processes (many threads), not the metrics exporter.

        Idle, they are up in about 3 s; the bound is generous because a CI run on two cores shared with the other
        test process once took more than 20 s to spawn them (each re-imports the worker).
        """
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [p for p in children(self.proc.pid) if thread_count(p) > 3]
            if pids:
                return pids
            time.sleep(0.1)
        seen = {p: thread_count(p) for p in children(self.proc.pid)}
        raise AssertionError(
            f"no worker process came up in {timeout} s (children and their threads: {seen}, "
            f"master exit status: {self.proc.poll()}):\n" + self.log.read_text()[-3000:]
        )

    def signal_master(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def worker_env(redis_url: str, prefix: str, sandbox_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUCOIN_", "PROVISIONER_", "PROMETHEUS"))}
    env.update(
        {
            "REDIS_URL": redis_url,
            "PROVISIONER_REDIS_PREFIX": prefix,
            "PROVISIONER_STATE_DIR": str(STATE_DIR / prefix),
            "KUCOIN_BROKER_BASE_URL": sandbox_url,
            "KUCOIN_SPOT_BASE_URL": sandbox_url,
            "PROVISIONER_METRICS_PORT": str(free_port()),
            # under the session's state folder (removed when the session ends), not a folder per port in /tmp
            "PROMETHEUS_MULTIPROC_DIR": str(STATE_DIR / f"{prefix}-metrics"),
            "PROVISIONER_LOG_FORMAT": "json",
            "PROVISIONER_RECOVERY_SECONDS": "10",
            "PROVISIONER_LOCK_TTL_MS": "10000",
            "KUCOIN_HTTP_CONNECT_TIMEOUT": "1",
            "KUCOIN_HTTP_WRITE_TIMEOUT": "1",
            "KUCOIN_HTTP_READ_TIMEOUT": "3",  # bound 1 + 2 x 1 + 1 + 3 = 7 s: the 10 s lock outlives it by 3 s
            "KUCOIN_HTTP_POOL_TIMEOUT": "1",
            "PROVISIONER_UNKNOWN_OUTCOME_SETTLE_MS": "500",
            "PROVISIONER_LISTING_LAG_MS": "0",
            "PROVISIONER_LEDGER_LAG_MS": "0",
            "PROVISIONER_MIN_BACKOFF_MS": "200",
            "PROVISIONER_MAX_BACKOFF_MS": "2000",
            **extra,
        }
    )
    return env


def publisher_for(env: dict[str, str]) -> tuple[Runtime, Publisher]:
    settings, _ = Settings.from_env(env)
    runtime = build_runtime(settings, registry=CollectorRegistry())
    return runtime, runtime.publisher()
