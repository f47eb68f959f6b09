"""The two spot reads the worker needs (not ND endpoints; no partner headers).

``GET /api/v1/sub-accounts/{subUserId}`` ("Get sub-account Detail - Balance", pool Management, weight 15): only
the broker's trading key; for ND sub-accounts ``subUserId`` is the numeric uid (our assumption; KuCoin's example
shows a 24-hex userId of an ordinary sub-account). With ``includeBaseAmount=false`` (default) zero balances are
omitted. ``baseCurrency`` is BTC at invented fixed prices.

``GET /api/v1/accounts`` ("Get Account List - Spot", weight 5): the caller's own accounts, callable with the
trading key (the Special Account) and with any live key issued by Add SubAccount API (its sub-account). An
account exists once its wallet has held the currency. Filters ``currency`` and ``type`` (main|trade; margin and
trade_hf are accepted and empty).
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from sandbox.config import WALLETS
from sandbox.context import Context
from sandbox.errors import business
from sandbox.state import Account, fmt_amount

__all__ = ["BTC_PRICE", "get_spot_account_list", "get_spot_sub_account_detail"]

BTC_PRICE = MappingProxyType({"USDT": "60000", "USDC": "60000", "BTC": "1", "ETH": "20", "KCS": "6000"})
"""Invented: units of each currency per 1 BTC (also the prices of simulated customer trades, ``sandbox.activity``)."""


def _entry(currency: str, amount: Decimal) -> dict[str, Any]:
    price = Decimal(BTC_PRICE.get(currency, "0"))
    base = (amount / price).quantize(Decimal("0.00000001")) if price else Decimal(0)
    return {
        "currency": currency,
        "balance": fmt_amount(amount),
        "available": fmt_amount(amount),
        "holds": "0",
        "baseCurrency": "BTC",
        "baseCurrencyPrice": fmt_amount(price),
        "baseAmount": fmt_amount(base),
        "tag": "DEFAULT",
    }


def _wallet(ctx: Context, account: Account, wallet: str, include_zero: bool) -> list[dict[str, Any]]:
    currencies = set(account.balances[wallet])
    if include_zero:
        currencies |= set(ctx.config.currency_precision)
    rows = [(c, account.available(wallet, c)) for c in sorted(currencies)]
    return [_entry(c, a) for c, a in rows if include_zero or a != 0]


def get_spot_sub_account_detail(ctx: Context) -> dict[str, Any]:
    """GET /api/v1/sub-accounts/{subUserId}?includeBaseAmount=false — a sub-account's balances."""
    sub = ctx.state.subaccounts.get(ctx.path_params["subUserId"])
    if sub is None:
        raise business("subUserId does not exist")
    include = ctx.query.choice("includeBaseAmount", ("true", "false"), required=False) == "true"
    return {
        "subUserId": sub.uid,
        "subName": sub.account_name,
        "mainAccounts": _wallet(ctx, sub, "MAIN", include),
        "tradeAccounts": _wallet(ctx, sub, "TRADE", include),
        "marginAccounts": [],
        "tradeHFAccounts": [],
    }


def _account_id(uid: str, wallet: str, currency: str) -> str:
    return hashlib.sha256(f"{uid}:{wallet}:{currency}".encode()).hexdigest()[:24]


def get_spot_account_list(ctx: Context) -> list[dict[str, Any]]:
    """GET /api/v1/accounts — the caller's own accounts ``[{id, currency, type, balance, available, holds}]``."""
    currency = ctx.query.string("currency", required=False)
    kind = ctx.query.choice("type", ("main", "trade", "margin", "trade_hf"), required=False)
    account = ctx.state.account(ctx.caller.uid)
    assert account is not None
    rows = []
    for wallet in WALLETS:
        if kind is not None and kind != wallet.lower():
            continue
        for code, amount in sorted(account.balances[wallet].items()):
            if currency is not None and code != currency:
                continue
            rows.append(
                {
                    "id": _account_id(account.uid, wallet, code),
                    "currency": code,
                    "type": wallet.lower(),
                    "balance": fmt_amount(amount),
                    "available": fmt_amount(amount),
                    "holds": "0",
                }
            )
    return rows
