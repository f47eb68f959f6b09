"""ND sub-accounts and broker info (docs/kucoin-api.md §6.5-6.7).

Add SubAccount: ``accountName`` is unique exchange-wide (documented). Undocumented and therefore switches:
the name rule (``enforce_name_rules``: the ordinary sub-account rule, 7-32 letters and digits with at least one
of each), names already taken by other brokers (``taken_names`` plus a seeded ``taken_name_share``), and the
cap (``max_account_size``). Names compare case-insensitively (our choice). Get SubAccount pages with
``currentPage``/``pageSize`` (default 20, max 100) and reports ``createdAt`` rounded to the second, as in
KuCoin's example; order by creation, ``subaccount_order`` asc (default) or desc. A new sub-account appears in
the listing only ``listing_lag_ms`` after it was created (default 0; the Add response is immediate); Get Broker
Info's ``accountSize`` counts it at once.
"""

from __future__ import annotations

import calendar
import math
import re
from typing import Any

from sandbox.context import Context
from sandbox.errors import business
from sandbox.state import SubAccount, seeded_fraction

__all__ = ["add_sub_account", "get_broker_info", "get_sub_account", "validate_report_dates"]

_NAME_RULE = re.compile(r"^(?=.*[A-Za-z])(?=.*[0-9])[A-Za-z0-9]{7,32}$")
NAME_TAKEN = "accountName already exists"
ACCOUNT_LIMIT = "sub-account count exceeds the limit"


def _name_taken_elsewhere(ctx: Context, name: str) -> bool:
    """Taken by another broker: listed in ``taken_names`` or picked by the seeded ``taken_name_share``."""
    folded = name.casefold()
    if folded in {n.casefold() for n in ctx.config.taken_names}:
        return True
    share = ctx.config.taken_name_share
    return share > 0 and seeded_fraction(ctx.config.seed, "taken-name", folded) < share


def add_sub_account(ctx: Context) -> dict[str, Any]:
    """POST /api/v1/broker/nd/account — create a sub-account; weight 3."""
    name = ctx.body.required("accountName")
    if ctx.config.enforce_name_rules and not _NAME_RULE.fullmatch(name):
        raise business("accountName must be 7-32 letters and digits with at least one letter and one digit")
    if ctx.state.name_in_use(name) or _name_taken_elsewhere(ctx, name):
        raise business(NAME_TAKEN)
    limit = ctx.config.max_account_size
    if limit is not None and len(ctx.state.subaccounts) >= limit:
        raise business(ACCOUNT_LIMIT)
    sub = ctx.state.add_subaccount(name, ctx.now_ms)
    return {"accountName": sub.account_name, "uid": sub.uid, "createdAt": sub.created_at, "level": sub.level}


def _listing(sub: SubAccount) -> dict[str, Any]:
    rounded = (sub.created_at + 500) // 1000 * 1000
    return {"accountName": sub.account_name, "uid": sub.uid, "createdAt": rounded, "level": sub.level}


def get_sub_account(ctx: Context) -> dict[str, Any]:
    """GET /api/v1/broker/nd/account — paginated sub-accounts, optionally filtered by ``uid``; weight 2.

    An unknown or foreign ``uid`` filter yields an empty page (our choice); so does one created less than
    ``listing_lag_ms`` ago."""
    uid = ctx.query.string("uid", required=False)
    page = ctx.query.integer("currentPage", default=1, minimum=1)
    size = ctx.query.integer("pageSize", default=20, minimum=1, maximum=100)
    listed_until = ctx.now_ms - ctx.config.listing_lag_ms
    subs = [s for s in ctx.state.subaccounts.values() if s.created_at <= listed_until]
    if ctx.config.subaccount_order == "desc":
        subs.reverse()
    if uid is not None:
        subs = [s for s in subs if s.uid == uid]
    start = (page - 1) * size
    return {
        "currentPage": page,
        "pageSize": size,
        "totalNum": len(subs),
        "totalPage": math.ceil(len(subs) / size),
        "items": [_listing(s) for s in subs[start : start + size]],
    }


def validate_report_dates(ctx: Context, *, required: bool) -> None:
    """``begin``/``end`` as YYYYMMDD with begin <= end <= begin + 6 months; ``tradeType`` "1" or "2"."""
    begin = ctx.query.day("begin", required=required)
    end = ctx.query.day("end", required=required)
    ctx.query.choice("tradeType", ("1", "2"), required=required)
    if begin is None or end is None:
        if (begin is None) != (end is None):
            raise business("begin and end must be given together")
        return
    if end < begin:
        raise business("end must not be before begin")
    month = begin.month + 6
    year, month = begin.year + (month - 1) // 12, (month - 1) % 12 + 1
    day = min(begin.day, calendar.monthrange(year, month)[1])
    if (end.year, end.month, end.day) > (year, month, day):
        raise business("the interval between begin and end must not exceed 6 months")


def get_broker_info(ctx: Context) -> dict[str, Any]:
    """GET /api/v1/broker/nd/info — {accountSize, maxAccountSize, level}; weight 2.

    SPEC marks begin/end/tradeType required but KuCoin's own e2e test sends only tradeType; the switch
    ``broker_info_requires_dates`` (default false) decides. Given values are always validated."""
    validate_report_dates(ctx, required=ctx.config.broker_info_requires_dates)
    return {
        "accountSize": len(ctx.state.subaccounts),
        "maxAccountSize": ctx.config.max_account_size,
        "level": ctx.config.broker_level,
    }
