"""Every key a deployment (one ``PROVISIONER_REDIS_PREFIX``) writes, found and deleted by prefix: ours under
``{prefix}:`` and dramatiq's under its namespace ``{prefix}-dramatiq:``. For throw-away deployments only (the
demo, tests); a real one is never deleted."""

from __future__ import annotations

import redis

from worker.runtime.admission import dramatiq_namespace

__all__ = ["delete_deployment_keys", "deployment_key_patterns"]


def deployment_key_patterns(key_prefix: str) -> tuple[str, str]:
    """The ``SCAN MATCH`` patterns of a deployment's keys (glob characters in the prefix are escaped)."""
    escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in key_prefix)
    return f"{escaped}:*", f"{dramatiq_namespace(escaped)}:*"


def delete_deployment_keys(client: redis.Redis, key_prefix: str) -> int:
    """Delete every key of the deployment ``key_prefix`` (never another's: the patterns end in ``:``) and return
    how many. Raises ``redis.RedisError`` when Redis fails."""
    if not key_prefix:
        raise ValueError("key_prefix is empty: that would match other deployments' keys")
    deleted = 0
    for pattern in deployment_key_patterns(key_prefix):
        batch: list[bytes | str] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 500:
                deleted += int(client.delete(*batch))
                batch = []
        if batch:
            deleted += int(client.delete(*batch))
    return deleted
