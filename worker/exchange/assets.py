"""Money as it stands and as it moved: sub-account deposits and withdrawals (ND endpoints), a sub-account's
balances (the spot "Get sub-account Detail - Balance") and the Special Account's ledger (the spot "Get Account
Ledgers - Spot/Margin"), both read with the Special Account's *trading* key."""

from __future__ import annotations

from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.errors import RequestValidationError, RetryableError
from worker.exchange.http import KucoinHttp
from worker.exchange.listing import Listing, read_complete
from worker.exchange.models import (
    Deposit,
    LedgerDirection,
    LedgerEntry,
    LedgerPage,
    Page,
    SubAccountBalances,
    Withdrawal,
    list_of,
)
from worker.exchange.requests import check_range

__all__ = ["LEDGER_MAX_RANGE_MS", "LEDGER_PAGE_SIZE", "Assets"]

_STATUSES = ("PROCESSING", "SUCCESS", "FAILURE")
LEDGER_MAX_RANGE_MS = 86_400_000
"""Largest ``endAt - startAt`` of one ledger query: KuCoin's 24 h window (our reading, docs/kucoin-api.md §8.3)."""
LEDGER_PAGE_SIZE = 500
_LEDGER_PASS_SIZES = (LEDGER_PAGE_SIZE, 311, 197, 89)
"""Page sizes of the passes over a ledger window whose pages left a gap: boundaries elsewhere each time."""
"""The largest ledger page KuCoin serves; ``ledger_entries`` reads whole windows with it."""
_MAX_LEDGER_CURRENCIES = 10


class Assets:
    def __init__(self, http: KucoinHttp) -> None:
        self._http = http

    def deposits(
        self,
        *,
        currency: str | None = None,
        status: str | None = None,
        tx_hash: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> tuple[Deposit, ...]:
        """Get Deposit List — ``GET /api/v1/asset/ndbroker/deposit/list``; Broker pool, weight 10.

        Deposits of the broker's sub-accounts, newest first, at most ``limit`` (1–1000); no pagination.
        """
        endpoint = ENDPOINTS["get_deposit_list"]
        check_range(limit, 1, 1000, field="limit", endpoint=endpoint.name)
        if status is not None and status not in _STATUSES:
            raise RequestValidationError(
                f"status must be one of {', '.join(_STATUSES)}", field="status", endpoint=endpoint.name
            )
        query = [
            (k, v)
            for k, v in (
                ("currency", currency),
                ("status", status),
                ("hash", tx_hash),
                ("startTimestamp", _opt(start_ms)),
                ("endTimestamp", _opt(end_ms)),
                ("limit", str(limit)),
            )
            if v is not None
        ]
        return self._http.call(endpoint, list_of(Deposit), query=query)

    def deposit(self, *, currency: str, tx_hash: str) -> Deposit:
        """Get Deposit Detail — ``GET /api/v3/broker/nd/deposit/detail``; Broker pool, weight 1."""
        return self._http.call(
            ENDPOINTS["get_deposit_detail"],
            Deposit.model_validate,
            query=[("currency", currency), ("hash", tx_hash)],
        )

    def withdrawal(self, *, withdrawal_id: str) -> Withdrawal:
        """Get Withdraw Detail — ``GET /api/v3/broker/nd/withdraw/detail``; Broker pool, weight 1."""
        return self._http.call(
            ENDPOINTS["get_withdraw_detail"],
            Withdrawal.model_validate,
            query=[("withdrawalId", withdrawal_id)],
        )

    def ledger(
        self,
        *,
        currency: str | None = None,
        direction: str | None = None,
        biz_type: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        current_page: int = 1,
        page_size: int = 50,
    ) -> LedgerPage:
        """Get Account Ledgers - Spot/Margin — ``GET /api/v1/accounts/ledgers`` on the spot host; Special Account
        *trading* key (so: the Special Account's own ledger); Management pool, weight 2.

        One page, newest first. ``currency`` takes up to 10 codes, comma-separated; ``direction`` is ``in`` or
        ``out``; ``biz_type`` e.g. ``BROKER_TRANSFER``; ``start_ms``/``end_ms`` bound ``createdAt`` and may be at
        most 24 h apart when both are given (KuCoin covers the last 24 h when neither is). Raises
        ``RequestValidationError`` (naming the argument) for a page size outside 10–500, a page below 1, another
        direction, more than 10 currencies, or a range that is reversed or wider than 24 h.
        """
        name = ENDPOINTS["get_account_ledgers"].name
        check_range(page_size, 10, 500, field="page_size", endpoint=name)
        check_range(current_page, 1, 2**31 - 1, field="current_page", endpoint=name)
        if direction is not None and direction not in (LedgerDirection.IN, LedgerDirection.OUT):
            raise RequestValidationError("direction must be in or out", field="direction", endpoint=name)
        if currency is not None and len([c for c in currency.split(",") if c.strip()]) > _MAX_LEDGER_CURRENCIES:
            raise RequestValidationError("currency takes at most 10 currencies", field="currency", endpoint=name)
        if start_ms is not None and end_ms is not None:
            if end_ms < start_ms:
                raise RequestValidationError("end_ms must not be before start_ms", field="end_ms", endpoint=name)
            if end_ms - start_ms > LEDGER_MAX_RANGE_MS:
                raise RequestValidationError(
                    f"start_ms and end_ms must be at most {LEDGER_MAX_RANGE_MS} ms apart", field="end_ms", endpoint=name
                )
        query = [
            (k, v)
            for k, v in (
                ("currency", currency),
                ("direction", None if direction is None else str(direction)),
                ("bizType", biz_type),
                ("startAt", _opt(start_ms)),
                ("endAt", _opt(end_ms)),
                ("currentPage", str(current_page)),
                ("pageSize", str(page_size)),
            )
            if v is not None
        ]
        return self._http.call(ENDPOINTS["get_account_ledgers"], LedgerPage.model_validate, query=query)

    def ledger_entries(self, *, currency: str, direction: str | None, start_ms: int, end_ms: int) -> list[LedgerEntry]:
        """Every Special Account ledger entry of ``currency`` (and ``direction``, if given) created in
        ``[start_ms, end_ms]``, newest first, each once.

        The range is split into windows of at most 24 h (``[s, s + 24 h]``, the next starting 1 ms later), read
        newest window first, each paged through with 500 entries a page until a short or the last page: about
        one request (weight 2) per day of range, more for busy days. Entries are only ever added, so paging
        misses none; one pushed to the next page by a newer entry is kept once, by id. An entry the exchange
        does not list yet (a ledger lag) is not returned: read again later to see it. Raises
        ``RequestValidationError`` for a reversed range; exchange errors as ``ledger``.
        """
        name = ENDPOINTS["get_account_ledgers"].name
        if end_ms < start_ms:
            raise RequestValidationError("end_ms must not be before start_ms", field="end_ms", endpoint=name)
        windows: list[tuple[int, int]] = []
        window_start = start_ms
        while window_start <= end_ms:
            window_end = min(window_start + LEDGER_MAX_RANGE_MS, end_ms)
            windows.append((window_start, window_end))
            window_start = window_end + 1
        seen: set[str] = set()
        entries: list[LedgerEntry] = []
        for low, high in reversed(windows):
            for entry in self._window(currency=currency, direction=direction, low=low, high=high):
                if entry.id not in seen and low <= entry.created_at <= high:
                    seen.add(entry.id)
                    entries.append(entry)
        entries.sort(key=lambda entry: entry.created_at, reverse=True)
        return entries

    def _window(self, *, currency: str, direction: str | None, low: int, high: int) -> list[LedgerEntry]:
        """Every entry of one window of at most 24 h, each once, checked against the exchange's own count
        (``worker.exchange.listing``; the window's end is fixed, so new transfers do not join it, only an entry
        listed late can): a pass whose distinct entries fall short is read again with other page boundaries, the
        passes joined. Raises ``RetryableError`` when every pass falls short: the ledger's silence must never come
        from a gap in its pages."""

        def read(current_page: int, page_size: int) -> Page[LedgerEntry]:
            return self.ledger(
                currency=currency,
                direction=direction,
                start_ms=low,
                end_ms=high,
                current_page=current_page,
                page_size=page_size,
            )

        return read_complete(
            read,
            _LEDGER_PASS_SIZES,
            Listing(lambda entry: entry.id),
            short=lambda joined: RetryableError(
                f"the ledger's listing is inconsistent: {len(joined.rows())} distinct entries in every pass "
                f"joined, totalNum {joined.expected}; read again later",
                endpoint=ENDPOINTS["get_account_ledgers"].name,
            ),
        )

    def sub_account_balances(self, *, uid: str) -> SubAccountBalances:
        """Get sub-account Detail - Balance — ``GET /api/v1/sub-accounts/{subUserId}`` on the spot host;
        Special Account *trading* key; Management pool, weight 15.

        Zero balances are left out (``includeBaseAmount=false``). For ND sub-accounts the uid is the
        ``subUserId`` (assumed: the ND API never exposes any other id).
        """
        return self._http.call(
            ENDPOINTS["get_sub_account_balance"],
            SubAccountBalances.model_validate,
            path_params={"subUserId": uid},
            query=[("includeBaseAmount", "false")],
        )


def _opt(value: int | None) -> str | None:
    return None if value is None else str(value)
