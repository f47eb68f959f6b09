"""Shared fixtures: a real Redis (REDIS_URL, default the test database 127.0.0.1:6379/1) in which each test
isolates itself by a unique key prefix, and deletes its keys afterwards.

Test tiers: a test that needs Redis is marked ``redis`` (whole worker processes ``slow``, a server on a loopback port
``loopback``), so that ``pytest -m "not redis and not slow and not loopback"`` (``./dev test-fast``) runs the tier
that needs no service. Most get the mark
from ``pytest_collection_modifyitems`` below, from the fixtures they use; the few that reach Redis without those
fixtures carry it by hand (``pytestmark``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

TEST_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1")


SERVICE_FIXTURES = frozenset({"redis_url", "shared_redis_url", "key_prefix", "private_redis", "node_example"})
"""Fixtures that need a service: a test whose fixture closure holds one of them is marked ``redis``. Every fixture
built on them (a rig, a live API, a webhook receiver, ...) is in that closure, so it is marked too."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a service fixture (``SERVICE_FIXTURES``) ``redis``."""
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


@pytest.fixture(scope="session", autouse=True)
def _remove_state_mirrors() -> Iterator[None]:
    """Remove the state-epoch mirrors this session's workers wrote when it ends. The database itself is never
    flushed: other runs may share it (each test deletes the keys under its own prefix)."""
    yield
    from tests.core.harness import STATE_DIR

    shutil.rmtree(STATE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def node_example() -> Path:
    """``examples/node`` with its npm dependencies installed (see ``tests.node``)."""
    from tests.node import install

    return install()


@pytest.fixture
def redis_url() -> str:
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def shared_redis_url() -> str:
    """``TEST_REDIS_URL`` for module-scoped fixtures (a rig shared by a module's tests); marks its users ``redis``."""
    return TEST_REDIS_URL


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it, dramatiq's included, is deleted after the test."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    delete_prefix(client, prefix)
    client.close()


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Delete every key of a test prefix: ours (``<prefix>:…``) and dramatiq's (``<prefix>-dramatiq:…``)."""
    for key in client.scan_iter(f"{prefix}[-:]*", count=1000):
        client.delete(key)
