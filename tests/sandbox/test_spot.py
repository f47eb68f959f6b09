"""The two spot reads: a sub-account's balances (trading key) and the caller's own accounts."""

from __future__ import annotations

import httpx

from sandbox import Exchange
from tests.sandbox.conftest import new_sub
from tests.sandbox.kc import fails, ok


def test_sub_account_detail_omits_zero_balances(mgmt: httpx.Client, trading: httpx.Client, exchange: Exchange) -> None:
    """GET /api/v1/sub-accounts/{uid} lists non-zero balances per wallet in KuCoin's shape."""
    uid = new_sub(mgmt)
    exchange.credit(uid, "USDT", "TRADE", "0.01")
    data = ok(trading.get(f"/api/v1/sub-accounts/{uid}", params={"includeBaseAmount": "false"}))
    assert data["subUserId"] == uid and data["subName"] == "Account15"
    assert data["mainAccounts"] == [] and data["marginAccounts"] == [] and data["tradeHFAccounts"] == []
    assert data["tradeAccounts"] == [
        {"currency": "USDT", "balance": "0.01", "available": "0.01", "holds": "0", "baseCurrency": "BTC",
         "baseCurrencyPrice": "60000", "baseAmount": "0.00000017", "tag": "DEFAULT"}
    ]  # fmt: skip
    everything = ok(trading.get(f"/api/v1/sub-accounts/{uid}", params={"includeBaseAmount": "true"}))
    assert {a["currency"] for a in everything["mainAccounts"]} == {"USDT", "USDC", "BTC", "ETH", "KCS"}


def test_sub_account_detail_of_unknown_uid(trading: httpx.Client) -> None:
    """An unknown subUserId fails with 400100."""
    fails(trading.get("/api/v1/sub-accounts/123456789"), "400100", msg="subUserId does not exist")


def test_trading_key_reads_special_account_with_filters(trading: httpx.Client) -> None:
    """GET /api/v1/accounts with the trading key lists the Special Account's accounts; currency/type filter."""
    rows = ok(trading.get("/api/v1/accounts"))
    assert {(r["currency"], r["type"]) for r in rows} >= {("USDT", "main"), ("USDT", "trade"), ("KCS", "main")}
    assert all(set(r) == {"id", "currency", "type", "balance", "available", "holds"} for r in rows)
    usdt_main = ok(trading.get("/api/v1/accounts", params={"currency": "USDT", "type": "main"}))
    assert [(r["currency"], r["type"], r["balance"]) for r in usdt_main] == [("USDT", "main", "100000000")]
    assert ok(trading.get("/api/v1/accounts", params={"type": "margin"})) == []
    fails(trading.get("/api/v1/accounts", params={"type": "pool"}), "400100")
