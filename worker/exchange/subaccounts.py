"""Sub-accounts: create one, list them (paginated). KuCoin offers no way to delete a sub-account."""

from __future__ import annotations

from collections.abc import Iterator

from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.errors import RequestValidationError
from worker.exchange.http import KucoinHttp
from worker.exchange.models import Page, SubAccount
from worker.exchange.requests import check_range

__all__ = ["SubAccounts"]

MAX_PAGE_SIZE = 100


class SubAccounts:
    def __init__(self, http: KucoinHttp) -> None:
        self._http = http

    def add(self, *, account_name: str) -> SubAccount:
        """Add SubAccount — ``POST /api/v1/broker/nd/account``; management key; Broker pool, weight 3.

        ``account_name`` is unique exchange-wide. Not idempotent: a lost response leaves the caller to look
        the name up with ``iter_all``. Raises ``RequestValidationError`` for an empty or spaced name.
        """
        endpoint = ENDPOINTS["add_sub_account"]
        if not account_name or any(c.isspace() for c in account_name) or len(account_name) > 64:
            raise RequestValidationError(
                "accountName must be 1-64 characters without spaces",
                field="account_name",
                endpoint=endpoint.name,
            )
        return self._http.call(endpoint, SubAccount.model_validate, body={"accountName": account_name})

    def page(self, *, current_page: int = 1, page_size: int = 20, uid: str | None = None) -> Page[SubAccount]:
        """Get SubAccount — ``GET /api/v1/broker/nd/account``; management key; Broker pool, weight 2.

        One page (``page_size`` 1–100, default 20), optionally filtered to one ``uid``. Sort order is not
        documented.
        """
        endpoint = ENDPOINTS["get_sub_accounts"]
        check_range(current_page, 1, 1_000_000, field="current_page", endpoint=endpoint.name)
        check_range(page_size, 1, MAX_PAGE_SIZE, field="page_size", endpoint=endpoint.name)
        query = [("uid", uid)] if uid else []
        query += [("currentPage", str(current_page)), ("pageSize", str(page_size))]
        return self._http.call(endpoint, Page[SubAccount].model_validate, query=query)

    def iter_all(self, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[SubAccount]:
        """Every sub-account of the broker, page by page (weight 2 per page)."""
        current = 1
        while True:
            page = self.page(current_page=current, page_size=page_size)
            yield from page.items
            if current >= page.total_page or not page.items:
                return
            current += 1
