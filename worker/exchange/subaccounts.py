"""Sub-accounts: create one, list them (paginated). KuCoin offers no way to delete a sub-account."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.errors import RequestValidationError, RetryableError
from worker.exchange.http import KucoinHttp
from worker.exchange.listing import Listing, pages, read_complete
from worker.exchange.models import Page, SubAccount
from worker.exchange.requests import check_range

__all__ = ["SubAccounts", "new_listing"]

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
        exchange's order changes between pages (``worker.exchange.listing``)."""
        return pages(self._read, page_size)

    def list_complete(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        seen: Listing[SubAccount] | None = None,
        before_page: Callable[[], None] = lambda: None,
    ) -> list[SubAccount]:
        """Every sub-account of the broker, each once, checked against the exchange's own count
        (``worker.exchange.listing``): a pass whose distinct rows fall short of ``totalNum`` is read again with
        other page sizes, their rows joined. ``seen``: rows an earlier pass at ``page_size`` read (page 1 is read
        again first). Raises ``RetryableError`` when the passes still fall short: never a listing that may lack a
        sub-account (a caller would conclude "not created" and create a second one). ``before_page`` runs before
        each page is read (a caller's lock renewal)."""
        listing = seen if seen is not None else new_listing()
        if seen is not None:
            before_page()
            listing.add(self.page(current_page=1, page_size=page_size))  # rows created meanwhile, listed first?
            if listing.complete:
                return listing.rows()
        sizes = [page_size, *(size for size in _OTHER_PAGE_SIZES if size != page_size)]
        return read_complete(
            self._read,
            sizes[:4] if seen is None else sizes[1:4],
            listing,
            before_page=before_page,
            short=lambda joined: RetryableError(
                f"the sub-account listing is inconsistent: {len(joined.rows())} distinct sub-accounts in every "
                f"pass joined, totalNum {joined.expected}; read again later",
                endpoint=ENDPOINTS["get_sub_accounts"].name,
            ),
        )

    def _read(self, current_page: int, page_size: int) -> Page[SubAccount]:
        return self.page(current_page=current_page, page_size=page_size)


def new_listing() -> Listing[SubAccount]:
    """An empty listing of sub-accounts, keyed by uid."""
    return Listing(lambda sub: sub.uid)


_OTHER_PAGE_SIZES = (100, 61, 37, 23)
"""Page sizes of the passes that read an inconsistent listing again: boundaries elsewhere each time."""
