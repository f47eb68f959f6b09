"""Resource-pool rate limiting: quota, weights, headers on every response, window reset (fake clock)."""

from __future__ import annotations

import httpx

from sandbox import Exchange
from sandbox.ratelimit import RateLimiter
from tests.sandbox.conftest import ClientFactory, FakeClock, new_key, new_sub
from tests.sandbox.kc import ApiKey, fails

ACCOUNTS = "/api/v1/broker/nd/account"


def limits(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["gw-ratelimit-limit"]), int(h["gw-ratelimit-remaining"]), int(h["gw-ratelimit-reset"])


def test_quota_exhaustion_answers_429_with_headers(mgmt: httpx.Client, exchange: Exchange, clock: FakeClock) -> None:
    """Past the quota: HTTP 429 429000 with gw-ratelimit-* headers, and the refused request deducts nothing."""
    exchange.update_config({"broker_quota": 10})
    for expected in (7, 4, 1):  # Add SubAccount weighs 3
        assert limits(mgmt.post(ACCOUNTS, json={"accountName": f"Account{expected:02d}"}))[1] == expected
    clock.advance(1)
    refused = mgmt.post(ACCOUNTS, json={"accountName": "Account99"})
    fails(refused, "429000", 429, msg="Too Many Requests")
    assert limits(refused) == (10, 1, 29_000)
    assert len(exchange.state_snapshot()["subAccounts"]) == 3
    assert limits(ok_response(mgmt.get("/api/v3/broker/nd/transfer/detail", params={"orderId": "x"})))[1] == 0
    assert exchange.state_snapshot()["stats"]["rateLimited"] == 1


def ok_response(response: httpx.Response) -> httpx.Response:
    assert response.status_code in (200, 400), response.text
    return response


def test_window_resets_30_seconds_after_the_first_request(
    mgmt: httpx.Client, exchange: Exchange, clock: FakeClock
) -> None:
    """The window starts at the pool's first request and resets 30 s later; reset counts down in ms."""
    exchange.update_config({"broker_quota": 4})
    assert limits(mgmt.get(ACCOUNTS)) == (4, 2, 30_000)
    clock.advance(10)
    assert limits(mgmt.get(ACCOUNTS)) == (4, 0, 20_000)
    fails(mgmt.get(ACCOUNTS), "429000", 429)
    clock.advance(20)
    assert limits(mgmt.get(ACCOUNTS)) == (4, 2, 30_000)


def test_headers_on_every_response_including_errors(mgmt: httpx.Client) -> None:
    """Validation failures and business errors carry gw-ratelimit-* headers (and consume weight)."""
    response = mgmt.post(ACCOUNTS, json={})
    fails(response, "400100")
    assert limits(response) == (2000, 1997, 30_000)


def test_pools_are_per_user_and_per_pool(mgmt: httpx.Client, trading: httpx.Client, make_client: ClientFactory) -> None:
    """Sub-account detail: Management/15; /api/v1/accounts: Spot/5 (quota 4000); each uid has its own pools."""
    uid = new_sub(mgmt)
    assert limits(trading.get(f"/api/v1/sub-accounts/{uid}"))[:2] == (2000, 1985)
    assert limits(trading.get("/api/v1/accounts"))[:2] == (4000, 3995)
    key = new_key(mgmt, uid)
    sub = make_client(ApiKey(key["apiKey"], key["secretKey"], "Aa12345678"))
    assert limits(sub.get("/api/v1/accounts"))[:2] == (4000, 3995)
    assert limits(trading.get("/api/v1/accounts"))[:2] == (4000, 3990)


def test_deposit_list_weighs_10(mgmt: httpx.Client) -> None:
    """Get Deposit List deducts its SPEC weight of 10 from the Broker pool."""
    assert limits(mgmt.get("/api/v1/asset/ndbroker/deposit/list"))[1] == 1990


def test_rate_limiter_refusal_deducts_nothing() -> None:
    """The limiter refuses a request heavier than what is left without touching the window."""
    limiter = RateLimiter()
    assert limiter.consume("u", "Broker", 3, quota=5, window_ms=30_000, now_ms=0).remaining == 2
    refused = limiter.consume("u", "Broker", 3, quota=5, window_ms=30_000, now_ms=100)
    assert (refused.allowed, refused.remaining, refused.reset_ms) == (False, 2, 29_900)
    assert limiter.consume("u", "Broker", 2, quota=5, window_ms=30_000, now_ms=200).allowed
    assert limiter.peek("other", "Broker", quota=5, window_ms=30_000, now_ms=0).remaining == 5
