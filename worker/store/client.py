"""The worker's own Redis client, built from ``Settings``: the composition root (``worker.bootstrap``) gives it to
every store, and a process without an app (the metrics exporter's ``RedisCollector``) builds one here."""

from __future__ import annotations

import redis

from worker.settings import Settings

__all__ = ["redis_client"]


def redis_client(settings: Settings) -> redis.Redis:
    """Our own Redis client (strings, not bytes), with time-outs so a dead Redis cannot hang a worker."""
    return redis.Redis.from_url(
        settings.redis_url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
    )
