"""Fixtures of the API tests: the API on loopback over the test Redis, and a signing upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.live import LiveApi, Upstream, live_api


@pytest.fixture
def api(redis_url: str, key_prefix: str) -> Iterator[LiveApi]:
    with live_api(redis_url, key_prefix) as served:
        yield served


@pytest.fixture
def upstream(api: LiveApi) -> Iterator[Upstream]:
    client = Upstream(api.url)
    yield client
    client.close()
