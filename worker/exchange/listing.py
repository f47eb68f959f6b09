"""Reading a paginated KuCoin listing completely (Get SubAccount, the Special Account's ledger).

KuCoin documents neither the order of these listings nor that it is stable between requests (``createdAt`` ties
within a second, rows added while the pages are read): a row can be repeated on one page and lost at a boundary.
A ``Listing`` keeps the rows every pass read, by key, and knows it is complete when it holds as many distinct rows
as the largest ``totalNum`` of its last pass — rows are never removed, so every row seen still exists, and that
many are exactly the rows there are (a row added meanwhile must have been seen too, or it could stand in for a lost
one). ``read_complete`` reads passes with other page sizes (boundaries elsewhere) until one is complete, or raises:
a caller never concludes "not listed" from a listing with a gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from worker.exchange.models import Page

__all__ = ["Listing", "PageReader", "pages", "read_complete", "read_pass"]

T = TypeVar("T")

PageReader = Callable[[int, int], Page[T]]
"""Reads one page: ``(current page, page size) -> Page``."""


class Listing(Generic[T]):
    """What passes over a listing saw: its rows by ``key``, and whether they are all the exchange counts."""

    def __init__(self, key: Callable[[T], str]) -> None:
        self._key = key
        self._rows: dict[str, T] = {}
        self.expected = 0
        """The largest ``totalNum`` of the current pass."""

    def pass_started(self) -> None:
        self.expected = 0

    def add(self, page: Page[T]) -> None:
        for row in page.items:
            self._rows.setdefault(self._key(row), row)
        self.expected = max(self.expected, page.total_num)

    @property
    def complete(self) -> bool:
        return len(self._rows) >= self.expected

    def rows(self) -> list[T]:
        return list(self._rows.values())


def pages(read: PageReader[T], size: int) -> Iterator[Page[T]]:
    """The listing's pages of ``size``, first to last (until the last page, a short or an empty one)."""
    current = 1
    while True:
        page = read(current, size)
        yield page
        if current >= page.total_page or not page.items or len(page.items) < size:
            return
        current += 1


def read_pass(read: PageReader[T], size: int, listing: Listing[T], *, before_page: Callable[[], None]) -> None:
    """One pass at page ``size`` into ``listing``; ``before_page`` runs before each page is read (a caller's lock
    renewal). A pass of several pages that falls short reads page 1 once more: an order that lists new rows first
    puts those added during the pass where it has read already."""
    listing.pass_started()
    before_page()
    read_pages = 0
    for page in pages(read, size):
        listing.add(page)
        read_pages += 1
        before_page()
    if not listing.complete and read_pages > 1:
        listing.add(read(1, size))


def read_complete(
    read: PageReader[T],
    sizes: Sequence[int],
    listing: Listing[T],
    *,
    before_page: Callable[[], None] = lambda: None,
    short: Callable[[Listing[T]], Exception],
) -> list[T]:
    """Every row, each once: passes at each of ``sizes`` in turn, joined in ``listing``, until one is complete.
    Raises ``short(listing)`` when none is."""
    for size in sizes:
        read_pass(read, size, listing, before_page=before_page)
        if listing.complete:
            return listing.rows()
    raise short(listing)
