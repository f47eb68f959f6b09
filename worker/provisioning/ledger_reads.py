"""The Special Account's ledger as one run of a customer reads it: each range read once.

After a loss of our state a customer's funding lines are looked for one by one (``LookForTransfer``), each a search
of the same currency's ledger over up to a month (about one request per day of range), often from the same moment
(the ledger's window): ten refusals in doubt cost ten month-long reads of the same entries. ``LedgerReads`` keeps,
for the run only, what was read of each currency and direction, and answers a later read from it, reading again
only what may have changed since: the part of the range the first read did not cover, and its tail — entries
created up to ``settled_ms`` (how long after a send the ledger surely lists it, the bound every judgement of the
ledger already rests on) and the clock skew before that read, which the exchange may not have listed yet. Under
that bound the answer is the one a fresh read would give; its cost is one request for the tail (a day's window).

It lives as long as the run (``StepContext``): a run holds the customer's lock, and a later run reads afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from handlers.daily_cap import LEDGER_SKEW_MS
from worker.exchange.models import LedgerEntry

__all__ = ["LedgerReads", "LedgerSource"]


class LedgerSource(Protocol):
    def ledger_entries(self, *, currency: str, direction: str | None, start_ms: int, end_ms: int) -> list[LedgerEntry]:
        """As ``worker.exchange.assets.Assets.ledger_entries``."""


@dataclass
class _Covered:
    start_ms: int
    """The earliest moment read."""
    end_ms: int
    """The latest moment read."""
    final_until_ms: int
    """Up to when what was read is all there will ever be (``LedgerReads`` docstring)."""
    entries: dict[str, LedgerEntry] = field(default_factory=dict)


class LedgerReads:
    """``ledger_entries`` answered from what this run read already where that cannot have changed since.

    ``source``: the ledger client to read through now (the run's current call scope); ``now_ms``: our clock;
    ``settled_ms``: how long after a send the ledger surely lists it.
    """

    def __init__(self, source: Callable[[], LedgerSource], now_ms: Callable[[], int], *, settled_ms: int) -> None:
        self._source = source
        self._now_ms = now_ms
        self._settled_ms = settled_ms
        self._covered: dict[tuple[str, str | None], _Covered] = {}

    def ledger_entries(self, *, currency: str, direction: str | None, start_ms: int, end_ms: int) -> list[LedgerEntry]:
        """Every ledger entry of ``currency`` (and ``direction``, if given) created in ``[start_ms, end_ms]``,
        newest first, each once: what a read of the exchange now would answer, reading only the parts of the range
        this run has not read yet, or read too recently to be final. Raises as ``Assets.ledger_entries``; nothing
        read is kept from a read that raised."""
        key = (currency, direction)
        covered = self._covered.get(key)
        read_at = self._now_ms()
        if covered is None or end_ms < covered.start_ms - 1 or start_ms > covered.final_until_ms + 1:
            covered = _Covered(start_ms, end_ms, self._final_until(read_at, end_ms))
            covered.entries = self._read(currency, direction, start_ms, end_ms)
        else:
            covered = self._extend(covered, key, start_ms=start_ms, end_ms=end_ms, read_at=read_at)
        self._covered[key] = covered
        found = [e for e in covered.entries.values() if start_ms <= e.created_at <= end_ms]
        found.sort(key=lambda e: e.created_at, reverse=True)
        return found

    def _extend(
        self, covered: _Covered, key: tuple[str, str | None], *, start_ms: int, end_ms: int, read_at: int
    ) -> _Covered:
        """``covered`` grown to ``[start_ms, end_ms]``: the part before it read, and everything after its final part
        read again to the later of the two ends (the entries there replaced by the new read's)."""
        entries = dict(covered.entries)
        start, end, final_until = covered.start_ms, covered.end_ms, covered.final_until_ms
        if start_ms < start:
            entries.update(self._read(*key, start_ms, start - 1))
            start = start_ms
        if end_ms > final_until:
            end = max(end, end_ms)
            tail = self._read(*key, final_until + 1, end)
            entries = {i: e for i, e in entries.items() if e.created_at <= final_until}
            entries.update(tail)
            final_until = self._final_until(read_at, end)
        return _Covered(start, end, final_until, entries)

    def _final_until(self, read_at: int, end_ms: int) -> int:
        return min(end_ms, read_at - self._settled_ms - LEDGER_SKEW_MS)

    def _read(self, currency: str, direction: str | None, start_ms: int, end_ms: int) -> dict[str, LedgerEntry]:
        read = self._source().ledger_entries(currency=currency, direction=direction, start_ms=start_ms, end_ms=end_ms)
        return {e.id: e for e in read}
