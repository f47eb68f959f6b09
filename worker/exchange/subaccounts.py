"""Sub-accounts: create one, list them (paginated). KuCoin offers no way to delete a sub-account."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.errors import RequestValidationError, RetryableError
from worker.exchange.http import KucoinHttp
from worker.exchange.models import Page, SubAccount
from worker.exchange.requests import check_range

__all__ = ["Listing", "SubAccounts"]

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
        """Every sub-account of the broker, each once (``list_complete``)."""
        yield from self.list_complete(page_size=page_size)

    def pages(self, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[Page[SubAccount]]:
        """The listing's pages, first to last (weight 2 per page). Their rows may overlap or leave gaps where the
        exchange's order changes between pages (it is not documented, and ``createdAt`` ties within a second):
        see ``Listing``."""
        current = 1
        while True:
            page = self.page(current_page=current, page_size=page_size)
            yield page
            if current >= page.total_page or not page.items:
                return
            current += 1

    def list_complete(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        seen: Listing | None = None,
        before_page: Callable[[], None] = lambda: None,
    ) -> list[SubAccount]:
        """Every sub-account of the broker, each once, checked against the exchange's own count: a pass whose
        distinct rows fall short of ``totalNum`` (a row lost between pages) is read again with other page sizes
        (other boundaries), their rows joined. ``seen``: rows an earlier pass read. Raises ``RetryableError``
        when three more passes still fall short: never a listing that may lack a sub-account (a caller would
        conclude "not created" and create a second one). ``before_page`` runs before each page is read (a
        caller's lock renewal)."""
        listing = seen if seen is not None else Listing()
        if seen is not None:
            before_page()
            listing.add(self.page(current_page=1, page_size=page_size))  # rows created meanwhile, listed first?
            if listing.complete:
                return listing.rows()
        sizes = [page_size, *(size for size in _OTHER_PAGE_SIZES if size != page_size)]
        for size in sizes[:4] if seen is None else sizes[1:4]:
            listing.pass_started()
            before_page()
            for page in self.pages(page_size=size):
                listing.add(page)
                before_page()
            if not listing.complete:  # an order that lists new rows first put those created meanwhile on page 1
                listing.add(self.page(current_page=1, page_size=size))
            if listing.complete:
                return listing.rows()
        raise RetryableError(
            f"the sub-account listing is inconsistent: {len(listing.rows())} distinct sub-accounts in every pass "
            f"joined, totalNum {listing.expected}; read again later",
            endpoint=ENDPOINTS["get_sub_accounts"].name,
        )


_OTHER_PAGE_SIZES = (100, 61, 37, 23)
"""Page sizes of the passes that read an inconsistent listing again: boundaries elsewhere each time."""


class Listing:
    """What passes over a paginated listing saw: its rows by uid, and whether they are all the exchange counts:
    ``totalNum``, the largest seen in the last pass — a row added meanwhile must have been seen too, or it could
    stand in for a row the pages lost. Rows are never removed (KuCoin deletes no sub-account), so every row seen
    still exists: as many distinct rows as the latest count are exactly the rows there are. (An order that lists
    new rows first puts those added during a pass where it has read already: page 1 is read once more.)"""

    def __init__(self) -> None:
        self._rows: dict[str, SubAccount] = {}
        self.expected = 0

    def pass_started(self) -> None:
        self.expected = 0

    def add(self, page: Page[SubAccount]) -> None:
        for row in page.items:
            self._rows.setdefault(row.uid, row)
        self.expected = max(self.expected, page.total_num)

    @property
    def complete(self) -> bool:
        return len(self._rows) >= self.expected

    def rows(self) -> list[SubAccount]:
        return list(self._rows.values())
