"""Fault injection as an httpx client sees it through the in-process transport (the loopback server's
behaviour is in test_server.py)."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox import Exchange, SandboxConfig, SandboxCredentials
from tests.sandbox.conftest import ClientFactory, FakeClock, client_for, management_key, partner_of
from tests.sandbox.kc import fails, ok

ACCOUNT = "/api/v1/broker/nd/account"


def names(exchange: Exchange) -> list[str]:
    return [s["accountName"] for s in exchange.state_snapshot()["subAccounts"]]


@pytest.mark.parametrize(("share_503", "status", "code"), [(0.0, 500, "500000"), (1.0, 503, "503000")])
def test_5xx_fails_before_commit(
    mgmt: httpx.Client, exchange: Exchange, share_503: float, status: int, code: str
) -> None:
    """A 5xx fault answers 500 (500000) or 503 with rate-limit headers, and nothing is committed."""
    exchange.update_config({"faults": {"rate_5xx": 1.0, "share_503": share_503}})
    response = mgmt.post(ACCOUNT, json={"accountName": "Account15"})
    fails(response, code, status)
    assert "gw-ratelimit-remaining" in response.headers
    assert names(exchange) == []
    assert exchange.state_snapshot()["stats"]["faults"] == {"5xx": 1}


@pytest.mark.parametrize(("timeout_share", "error"), [(1.0, httpx.ReadTimeout), (0.0, httpx.RemoteProtocolError)])
def test_drop_commits_then_loses_the_response(
    mgmt: httpx.Client, exchange: Exchange, timeout_share: float, error: type[Exception]
) -> None:
    """A drop commits the change, then the client sees ReadTimeout or RemoteProtocolError (seeded coin)."""
    exchange.update_config({"faults": {"rate_drop": 1.0, "drop_timeout_share": timeout_share}})
    with pytest.raises(error):
        mgmt.post(ACCOUNT, json={"accountName": "Account15"})
    assert names(exchange) == ["Account15"]


def test_slow_beyond_read_timeout_is_a_read_timeout_after_commit(
    make_client: ClientFactory, exchange: Exchange, creds: SandboxCredentials
) -> None:
    """A slow response beyond the read time-out raises ReadTimeout quickly, after committing the change."""
    exchange.update_config({"faults": {"rate_slow": 1.0, "slow_ms": 15_000}})
    client = make_client(management_key(creds), partner_of(creds), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post(ACCOUNT, json={"accountName": "Account15"})
    assert time.monotonic() - started < 0.5
    assert names(exchange) == ["Account15"]


def test_slow_within_read_timeout_is_answered(
    make_client: ClientFactory, exchange: Exchange, creds: SandboxCredentials
) -> None:
    """A slow response shorter than the read time-out arrives normally."""
    exchange.update_config({"faults": {"rate_slow": 1.0, "slow_ms": 500}})
    client = make_client(management_key(creds), partner_of(creds), timeout=1.0)
    ok(client.post(ACCOUNT, json={"accountName": "Account15"}))


def test_429_burst_refuses_without_consuming_quota(mgmt: httpx.Client, exchange: Exchange, clock: FakeClock) -> None:
    """A 429 fault starts a burst: requests of that pool get 429 with headers until it ends; quota is untouched."""
    exchange.update_config({"faults": {"rate_429": 1.0, "burst_429_ms": 1000}})
    first = mgmt.get(ACCOUNT)
    fails(first, "429000", 429, msg="Too Many Requests")
    assert (first.headers["gw-ratelimit-remaining"], first.headers["gw-ratelimit-reset"]) == ("0", "1000")
    exchange.update_config({"faults": {"rate_429": 0.0}})
    clock.advance(0.4)
    second = mgmt.get(ACCOUNT)
    fails(second, "429000", 429)
    assert second.headers["gw-ratelimit-reset"] == "600"
    clock.advance(0.6)
    assert ok_headers(mgmt.get(ACCOUNT)) == "1998"
    stats = exchange.state_snapshot()["stats"]
    assert stats["faults"]["429"] == 2 and stats["rateLimited"] == 2


def ok_headers(response: httpx.Response) -> str:
    ok(response)
    return response.headers["gw-ratelimit-remaining"]


def test_latency_sleeps_before_processing(creds: SandboxCredentials, clock: FakeClock) -> None:
    """Latency (fixed + seeded jitter) is slept before each /api request and counted."""
    slept: list[float] = []
    faults = {"latency_ms": 50, "latency_jitter_ms": 10}
    exchange = Exchange(SandboxConfig().merged({"faults": faults}), creds, clock=clock, sleep=slept.append)
    with client_for(exchange, management_key(creds), partner_of(creds), clock=clock) as client:
        for _ in range(5):
            ok(client.get(ACCOUNT))
        client.get("/sandbox/v1/state")
    assert len(slept) == 5 and all(0.05 <= s <= 0.06 for s in slept)
    assert exchange.state_snapshot()["stats"]["faults"] == {"latency": 5}


def test_per_endpoint_rates_override_global_ones(mgmt: httpx.Client, exchange: Exchange) -> None:
    """faults.per_endpoint applies a kind's rate to one endpoint name only."""
    exchange.update_config({"faults": {"per_endpoint": {"get_sub_account": {"5xx": 1.0}}}})
    ok(mgmt.post(ACCOUNT, json={"accountName": "Account15"}))
    assert mgmt.get(ACCOUNT).status_code in (500, 503)


def test_faults_are_deterministic_per_seed(creds: SandboxCredentials, clock: FakeClock) -> None:
    """Two exchanges with the same seed inject the same faults for the same request sequence."""
    runs = []
    for _ in range(2):
        exchange = Exchange(SandboxConfig(seed=42).merged({"faults": {"rate_5xx": 0.3}}), creds, clock=clock)
        with client_for(exchange, management_key(creds), partner_of(creds), clock=clock) as client:
            runs.append([client.get(ACCOUNT).status_code for _ in range(30)])
    assert runs[0] == runs[1] and 200 in runs[0] and any(s >= 500 for s in runs[0])


def test_admin_paths_and_auth_failures_are_never_faulted(
    mgmt: httpx.Client, exchange: Exchange, make_client: ClientFactory
) -> None:
    """/sandbox paths are never faulted, and faults are drawn only after authentication succeeds."""
    exchange.update_config({"faults": {"rate_5xx": 1.0}})
    assert mgmt.get("/sandbox/v1/state").status_code == 200
    fails(make_client(None).get(ACCOUNT), "400001", 400)


def test_drop_also_loses_error_responses(mgmt: httpx.Client, exchange: Exchange) -> None:
    """A drawn drop applies to whatever the exchange answered, a business error included."""
    exchange.update_config({"faults": {"rate_drop": 1.0, "drop_timeout_share": 0.0}})
    with pytest.raises(httpx.RemoteProtocolError):
        mgmt.post(ACCOUNT, json={})
    assert exchange.state_snapshot()["stats"]["responses"] == {"400100": 1}
