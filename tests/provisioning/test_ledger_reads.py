"""``LedgerReads``: a run reads each range of the Special Account's ledger once, and answers as a fresh read would
while the ledger lists every entry within its settle bound."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from worker.exchange.errors import RetryableError
from worker.exchange.models import LedgerEntry
from worker.provisioning.ledger_reads import LedgerReads

SETTLED_MS = 30_000
SKEW_MS = 15_000  # handlers.daily_cap.LEDGER_SKEW_MS
DAY_MS = 86_400_000


@dataclass
class Ledger:
    """A ledger that lists an entry ``lag_ms`` after it was created (each entry may have its own lag), read at the
    clock's present; remembers every range it was asked for."""

    now_ms: int = 100 * DAY_MS
    entries: list[tuple[LedgerEntry, int]] = field(default_factory=list)
    reads: list[tuple[str, str | None, int, int]] = field(default_factory=list)
    fail_next: bool = False

    def add(self, entry_id: str, created_at: int, *, currency: str = "USDT", lag_ms: int = 0) -> None:
        entry = LedgerEntry(
            id=entry_id,
            currency=currency,
            amount=Decimal("100"),
            account_type="MAIN",
            biz_type="Transfer",
            direction="out",
            created_at=created_at,
        )
        self.entries.append((entry, created_at + lag_ms))

    def ledger_entries(self, *, currency: str, direction: str | None, start_ms: int, end_ms: int) -> list[LedgerEntry]:
        self.reads.append((currency, direction, start_ms, end_ms))
        if self.fail_next:
            self.fail_next = False
            raise RetryableError("429", endpoint="get_account_ledgers")
        found = [
            e
            for e, listed_at in self.entries
            if e.currency == currency and start_ms <= e.created_at <= end_ms and listed_at <= self.now_ms
        ]
        return sorted(found, key=lambda e: e.created_at, reverse=True)


def _reads(ledger: Ledger) -> LedgerReads:
    return LedgerReads(lambda: ledger, lambda: ledger.now_ms, settled_ms=SETTLED_MS)


def _ids(entries: list[LedgerEntry]) -> list[str]:
    return [e.id for e in entries]


def test_a_second_read_of_a_month_reads_only_the_tail() -> None:
    ledger = Ledger()
    now = ledger.now_ms
    ledger.add("old", now - 20 * DAY_MS)
    reads = _reads(ledger)
    first = reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 31 * DAY_MS, end_ms=now)
    ledger.now_ms += 2_000
    ledger.add("new", ledger.now_ms - 500)
    second = reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 30 * DAY_MS, end_ms=ledger.now_ms)
    assert _ids(first) == ["old"]
    assert _ids(second) == ["new", "old"]
    tail = ledger.reads[1]
    assert tail[2] == now - SETTLED_MS - SKEW_MS + 1 and tail[3] == ledger.now_ms, tail


def test_an_entry_listed_late_within_the_bound_is_seen_by_the_next_read() -> None:
    """Created before the first read but listed only after it (a ledger lag shorter than the settle bound)."""
    ledger = Ledger()
    now = ledger.now_ms
    ledger.add("lagging", now - 10_000, lag_ms=20_000)
    reads = _reads(ledger)
    assert reads.ledger_entries(currency="USDT", direction="out", start_ms=now - DAY_MS, end_ms=now) == []
    ledger.now_ms += 15_000
    later = reads.ledger_entries(currency="USDT", direction="out", start_ms=now - DAY_MS, end_ms=ledger.now_ms)
    assert _ids(later) == ["lagging"]


def test_a_read_reaching_further_back_reads_the_part_before() -> None:
    ledger = Ledger()
    now = ledger.now_ms
    ledger.add("older", now - 5 * DAY_MS)
    ledger.add("recent", now - DAY_MS)
    reads = _reads(ledger)
    assert _ids(reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 2 * DAY_MS, end_ms=now)) == [
        "recent"
    ]
    both = reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 6 * DAY_MS, end_ms=now)
    assert _ids(both) == ["recent", "older"]
    assert ledger.reads[1][2:] == (now - 6 * DAY_MS, now - 2 * DAY_MS - 1)


def test_a_range_inside_the_final_part_is_answered_without_a_request() -> None:
    ledger = Ledger()
    now = ledger.now_ms
    ledger.add("a", now - 3 * DAY_MS)
    ledger.add("b", now - 2 * DAY_MS)
    reads = _reads(ledger)
    reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 4 * DAY_MS, end_ms=now)
    inside = reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 3 * DAY_MS - 1, end_ms=now - DAY_MS)
    assert _ids(inside) == ["b", "a"]
    assert len(ledger.reads) == 1


def test_currencies_and_directions_are_read_apart() -> None:
    ledger = Ledger()
    now = ledger.now_ms
    ledger.add("u", now - DAY_MS)
    ledger.add("b", now - DAY_MS, currency="BTC")
    reads = _reads(ledger)
    assert _ids(reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 2 * DAY_MS, end_ms=now)) == ["u"]
    assert _ids(reads.ledger_entries(currency="BTC", direction="out", start_ms=now - 2 * DAY_MS, end_ms=now)) == ["b"]
    assert _ids(reads.ledger_entries(currency="USDT", direction=None, start_ms=now - 2 * DAY_MS, end_ms=now)) == ["u"]
    assert len(ledger.reads) == 3


def test_a_range_after_what_was_read_is_read_whole() -> None:
    ledger = Ledger()
    now = ledger.now_ms
    reads = _reads(ledger)
    reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 9 * DAY_MS, end_ms=now - 8 * DAY_MS)
    ledger.add("later", now - DAY_MS)
    later = reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 2 * DAY_MS, end_ms=now)
    assert _ids(later) == ["later"]
    assert ledger.reads[1][2:] == (now - 2 * DAY_MS, now)


def test_a_read_that_fails_keeps_nothing() -> None:
    ledger = Ledger()
    now = ledger.now_ms
    ledger.add("a", now - DAY_MS)
    reads = _reads(ledger)
    reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 2 * DAY_MS, end_ms=now)
    ledger.now_ms += 60_000
    ledger.add("b", now + 30_000)
    ledger.fail_next = True
    with pytest.raises(RetryableError):
        reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 2 * DAY_MS, end_ms=ledger.now_ms)
    again = reads.ledger_entries(currency="USDT", direction="out", start_ms=now - 2 * DAY_MS, end_ms=ledger.now_ms)
    assert _ids(again) == ["b", "a"]
