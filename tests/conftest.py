"""Shared fixtures: a real Redis (REDIS_URL, default the test database 127.0.0.1:6379/1) in which each test
isolates itself by a unique key prefix, and deletes its keys afterwards."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

TEST_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1")


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
