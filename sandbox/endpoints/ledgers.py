"""Get Account Ledgers - Spot/Margin: ``GET /api/v1/accounts/ledgers`` on the spot host (docs/kucoin-api.md §8.3).

Callable with the Special Account's trading key (its own ledger, where every ND transfer leaves a
BROKER_TRANSFER entry) and with any live key issued by Add SubAccount API (that sub-account's ledger). Pool
Management, weight 2, as KuCoin's docs-new page (api-3470121) and the universal SDK give them; whether the ND
Special Account's ledger really lists broker transfers, and with what ``bizType`` and ``context``, is unconfirmed.

Query: ``currency`` (up to 10, comma-separated), ``direction`` (in|out), ``bizType`` (exact match),
``startAt``/``endAt`` (ms, both inclusive), ``currentPage`` (default 1), ``pageSize`` (default 50, 10-500).
Both bounds given: ``endAt - startAt`` may not exceed ``ledger_max_range_ms`` (default 24 h). Neither given: the
last 24 h. One given: 24 h on that side of it (our choice). Newest first; ties keep the newest-written first.
An entry is visible ``ledger_lag_ms`` after it was created.
"""

from __future__ import annotations

import math
from typing import Any

from sandbox.context import Context
from sandbox.errors import business

__all__ = ["DEFAULT_WINDOW_MS", "get_account_ledgers"]

DEFAULT_WINDOW_MS = 86_400_000
"""The window when a bound is missing: the last 24 h, or 24 h from the one bound given."""
MAX_CURRENCIES = 10


def _currencies(raw: str | None) -> set[str] | None:
    if raw is None:
        return None
    codes = {c.strip() for c in raw.split(",") if c.strip()}
    if len(codes) > MAX_CURRENCIES:
        raise business(f"currency must list at most {MAX_CURRENCIES} currencies")
    return codes or None


def _window(ctx: Context) -> tuple[int, int]:
    query = ctx.query
    start = query.integer("startAt", default=0, minimum=0) if query.has("startAt") else None
    end = query.integer("endAt", default=0, minimum=0) if query.has("endAt") else None
    if start is None and end is None:
        return ctx.now_ms - DEFAULT_WINDOW_MS, ctx.now_ms
    if start is None:
        assert end is not None
        return end - DEFAULT_WINDOW_MS, end
    if end is None:
        return start, start + DEFAULT_WINDOW_MS
    if end < start:
        raise business("endAt must not be before startAt")
    limit = ctx.config.ledger_max_range_ms
    if end - start > limit:
        raise business(f"the interval between startAt and endAt must not exceed {limit} ms")
    return start, end


def get_account_ledgers(ctx: Context) -> dict[str, Any]:
    """GET /api/v1/accounts/ledgers — the caller's own ledger, paginated, newest first; weight 2."""
    currencies = _currencies(ctx.query.string("currency", required=False))
    direction = ctx.query.choice("direction", ("in", "out"), required=False)
    biz_type = ctx.query.string("bizType", required=False)
    start, end = _window(ctx)
    page = ctx.query.integer("currentPage", default=1, minimum=1)
    size = ctx.query.integer("pageSize", default=50, minimum=10, maximum=500)
    visible_until = ctx.now_ms - ctx.config.ledger_lag_ms
    entries = [
        e
        for e in reversed(ctx.state.ledger.of(ctx.caller.uid))
        if e.created_at <= visible_until
        and start <= e.created_at <= end
        and (currencies is None or e.currency in currencies)
        and (direction is None or e.direction == direction)
        and (biz_type is None or e.biz_type == biz_type)
    ]
    entries.sort(key=lambda e: e.created_at, reverse=True)
    first = (page - 1) * size
    return {
        "currentPage": page,
        "pageSize": size,
        "totalNum": len(entries),
        "totalPage": math.ceil(len(entries) / size),
        "items": [e.to_json() for e in entries[first : first + size]],
    }
