"""The shared fixtures clean up after themselves: a test prefix leaves no key behind in the shared database."""

from __future__ import annotations

import pytest
import redis

from tests.conftest import TEST_REDIS_URL, delete_prefix

pytestmark = pytest.mark.redis


def test_delete_prefix_removes_our_keys_and_dramatiqs_and_nothing_else() -> None:
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    try:
        keys = ["tfixture001:a", "tfixture001:c:x", "tfixture001-dramatiq:events.msgs", "tfixture0011:other"]
        for key in keys:
            client.set(key, "1", ex=60)
        delete_prefix(client, "tfixture001")
        assert [key for key in keys if client.exists(key)] == ["tfixture0011:other"]
    finally:
        client.delete(*keys)
        client.close()
