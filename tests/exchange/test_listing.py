"""A sub-account listing is complete only when its distinct rows reach the exchange's own count (``totalNum``):
rows lost between pages (an order that changes between requests, ties within a second) are read again with other
page boundaries, and a listing that stays short is an error to retry, never a "not found"."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from worker.exchange import RetryableError
from worker.exchange.assets import Assets
from worker.exchange.models import LedgerDirection, LedgerEntry, LedgerPage, Page, SubAccount
from worker.exchange.subaccounts import SubAccounts

ROWS = [SubAccount(account_name=f"n{i:03d}", uid=str(1000 + i), created_at=1_700_000_000_000) for i in range(101)]


class Paged(SubAccounts):
    """A listing whose page ``hide_at`` of size ``hide_size`` repeats its first row in place of its last."""

    def __init__(self, hide_size: int | None) -> None:
        self.hide_size = hide_size
        self.asked: list[tuple[int, int]] = []

    def page(self, *, current_page: int = 1, page_size: int = 20, uid: str | None = None) -> Page[SubAccount]:
        self.asked.append((current_page, page_size))
        rows = list(ROWS[(current_page - 1) * page_size : current_page * page_size])
        if page_size == self.hide_size and current_page == 2:
            rows[-1] = ROWS[0]  # the last row lost, the first repeated: same length, same totals
        data: dict[str, Any] = {
            "current_page": current_page,
            "page_size": page_size,
            "total_num": len(ROWS),
            "total_page": -(-len(ROWS) // page_size),
            "items": rows,
        }
        return Page[SubAccount].model_validate(data)


def test_a_pass_that_lost_a_row_is_read_again_with_other_boundaries() -> None:
    listing = Paged(hide_size=100)
    rows = listing.list_complete()
    assert {r.uid for r in rows} == {r.uid for r in ROWS} and len(rows) == len(ROWS)
    assert {size for _, size in listing.asked} == {100, 61}, "a second pass, at another page size"


def test_a_consistent_listing_is_read_once() -> None:
    listing = Paged(hide_size=None)
    assert len(listing.list_complete()) == len(ROWS)
    assert listing.asked == [(1, 100), (2, 100)]


def test_a_listing_that_stays_short_is_an_error_to_retry() -> None:
    class AlwaysShort(Paged):
        def page(self, *, current_page: int = 1, page_size: int = 20, uid: str | None = None) -> Page[SubAccount]:
            page = super().page(current_page=current_page, page_size=page_size)
            return page.model_copy(update={"items": tuple(r for r in page.items if r.uid != ROWS[-1].uid)})

    with pytest.raises(RetryableError, match="listing is inconsistent"):
        AlwaysShort(hide_size=None).list_complete()


ENTRIES = [
    LedgerEntry(
        id=f"L{i:04d}",
        currency="USDT",
        amount=Decimal("1"),
        account_type="MAIN",
        biz_type="BROKER_TRANSFER",
        direction=LedgerDirection.OUT,
        created_at=1_700_000_000_000,  # one millisecond: ties
    )
    for i in range(700)
]


class Ledger(Assets):
    """A ledger window whose second page of 500 repeats its first entry in place of its last."""

    def __init__(self, *, always_short: bool = False) -> None:
        self.asked: list[int] = []
        self.always_short = always_short

    def ledger(self, **query: Any) -> LedgerPage:  # type: ignore[override]
        page, size = query["current_page"], query["page_size"]
        self.asked.append(size)
        rows = list(ENTRIES[(page - 1) * size : page * size])
        if (size == 500 and page == 2) or self.always_short:
            rows = [r for r in rows if r.id != ENTRIES[-1].id] + ([ENTRIES[0]] if page == 2 else [])
        return LedgerPage(
            current_page=page, page_size=size, total_num=len(ENTRIES), total_page=-(-len(ENTRIES) // size), items=rows
        )


def test_a_ledger_window_with_a_gap_between_pages_is_read_again() -> None:
    ledger = Ledger()
    found = ledger.ledger_entries(
        currency="USDT", direction="out", start_ms=1_699_999_000_000, end_ms=1_700_000_001_000
    )
    assert len(found) == len(ENTRIES) and ENTRIES[-1].id in {e.id for e in found}
    assert set(ledger.asked) == {500, 311}


def test_a_ledger_that_stays_short_is_an_error_to_retry_not_a_silence() -> None:
    with pytest.raises(RetryableError, match="ledger's listing is inconsistent"):
        Ledger(always_short=True).ledger_entries(
            currency="USDT", direction="out", start_ms=1_699_999_000_000, end_ms=1_700_000_001_000
        )


def test_rows_created_during_a_pass_and_listed_first_are_read_from_page_one_again() -> None:
    """Newest first, a sub-account created between page 1 and page 2 pushes a row already read onto page 2 and
    sits on page 1: the pass falls short of the count, page 1 is read once more, and the listing is complete —
    no second pass, no error."""

    class NewestFirst(SubAccounts):
        def __init__(self) -> None:
            self.rows = list(reversed(ROWS[:100]))
            self.asked: list[tuple[int, int]] = []

        def page(self, *, current_page: int = 1, page_size: int = 20, uid: str | None = None) -> Page[SubAccount]:
            self.asked.append((current_page, page_size))
            if current_page == 2 and len(self.rows) == 100:
                self.rows.insert(0, ROWS[100])  # created meanwhile by another worker
            items = self.rows[(current_page - 1) * page_size : current_page * page_size]
            return Page[SubAccount].model_validate(
                {
                    "current_page": current_page,
                    "page_size": page_size,
                    "total_num": len(self.rows),
                    "total_page": -(-len(self.rows) // page_size),
                    "items": items,
                }
            )

    listing = NewestFirst()
    assert {r.uid for r in listing.list_complete(page_size=50)} == {r.uid for r in ROWS}
    assert listing.asked == [(1, 50), (2, 50), (3, 50), (1, 50)]
