"""The metrics exporter: a process of its own, forked by the dramatiq CLI (``MetricsMiddleware.forks``), that serves
every worker process's counters (multiprocess mode) and the Redis gauges on one HTTP endpoint.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from worker.runtime.metrics_collector import RedisCollector
from worker.runtime.queues import QUEUE_EVENTS, QUEUE_RECONCILE, QUEUE_URGENT
from worker.settings import Settings

__all__ = ["serve_metrics"]


def serve_metrics() -> int:
    """The exporter process (forked by the dramatiq CLI): aggregates every worker's values and Redis gauges."""
    from prometheus_client import start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    settings, _ = Settings.from_env()
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(RedisCollector(settings, [QUEUE_EVENTS, QUEUE_URGENT, QUEUE_RECONCILE]))
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    while True:
        time.sleep(3600)
