"""A deployment's keys, dramatiq's included, can be deleted by prefix, and nothing else with them (the demo and
the test fixtures clean up this way)."""

from __future__ import annotations

import redis

from worker.runtime.deployment_keys import delete_deployment_keys


def test_every_key_of_a_prefix_goes_and_a_neighbours_stay(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    neighbour = f"{key_prefix}x"
    try:
        client.set(f"{key_prefix}:customer:1", "x")
        client.rpush(f"{key_prefix}-dramatiq:events", "m")
        client.hset(f"{key_prefix}-dramatiq:events.msgs", "m", "body")
        client.set(f"{neighbour}:customer:1", "y")
        client.set(f"{neighbour}-dramatiq:events", "y")
        assert delete_deployment_keys(client, key_prefix) == 3
        assert client.keys(f"{key_prefix}:*") == [] and client.keys(f"{key_prefix}-dramatiq:*") == []
        assert client.get(f"{neighbour}:customer:1") == b"y" and client.get(f"{neighbour}-dramatiq:events") == b"y"
    finally:
        delete_deployment_keys(client, neighbour)
        client.close()
