"""Fixtures of the runtime tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.private_redis import PrivateRedis


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A durable redis-server of the test's own, which it may kill and restart."""
    server = PrivateRedis(durable=True)
    server.start()
    yield server
    server.stop()
