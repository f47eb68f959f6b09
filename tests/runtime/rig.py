"""A real dramatiq worker (threads in this process) on real Redis, talking to the in-process simulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dramatiq
from prometheus_client import CollectorRegistry

from sandbox import Exchange, SandboxConfig
from tests.core.harness import settings_for
from worker.runtime.broker import Runtime, build_runtime


class WorkerRig:
    def __init__(
        self, redis_url: str, key_prefix: str, *, config: SandboxConfig | None = None, threads: int = 4, **settings: str
    ) -> None:
        defaults = {
            "PROVISIONER_MIN_BACKOFF_MS": "100",
            "PROVISIONER_MAX_BACKOFF_MS": "400",
            "PROVISIONER_MAX_RETRIES": "3",
            "PROVISIONER_AUTH_RETRY_DELAY_MS": "1000",
            "PROVISIONER_UNKNOWN_OUTCOME_SETTLE_MS": "0",
            "PROVISIONER_LISTING_LAG_MS": "0",  # the simulator lists at once (no listing_lag_ms)
            "PROVISIONER_LEDGER_LAG_MS": "0",
            "PROVISIONER_ROTATION_GRACE_SECONDS": "1",
            "PROVISIONER_RATE_LIMIT": "true",
        }
        self.settings = settings_for(redis_url, key_prefix, **{**defaults, **settings})
        self.exchange = Exchange(config or SandboxConfig())
        self.registry = CollectorRegistry()
        self.runtime: Runtime = build_runtime(
            self.settings, transport=self.exchange.transport(), registry=self.registry, scheduler_interval_s=0.05
        )
        self.runtime.app.state.establish(ask_exchange=False)  # a new key prefix: a new deployment (as the gate)
        self.worker = dramatiq.Worker(self.runtime.broker, worker_threads=threads, worker_timeout=50)
        self.publisher = self.runtime.publisher()

    def __enter__(self) -> WorkerRig:
        self.worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop(timeout=10_000)
        self.runtime.close()

    def wait_for(self, condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return value or 0.0

    def live_keys(self) -> list[dict[str, Any]]:
        return [k for k in self.exchange.state_snapshot()["apiKeys"] if k["deletedAt"] is None]
