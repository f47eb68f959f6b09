"""The Special Account's daily funding cap: on which UTC day a send of a funding line counts. Pure.

Each send of a funding line reserves its amount on the cap of every day the exchange may execute it on
(``worker.provisioning.money_steps``; the reservation itself is atomic in ``worker.store.ledger``): the day it is
sent, and the next one too when the request may still be on the wire at UTC midnight, or the previous one when the
exchange's clock may still show it. A line holds at most one reservation per day, so a re-send the same day adds
nothing, while a re-send after midnight counts on its own day: it may pay then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from handlers.records import TransferPurpose, TransferRecord, TransferStatus

__all__ = [
    "AGAIN",
    "DAY_MS",
    "LEDGER_MAX_WINDOW_MS",
    "LEDGER_SKEW_MS",
    "again_by_day",
    "again_listed_by_ledger",
    "days_between",
    "executed_on",
    "listed_by_ledger",
    "may_have_refused",
    "reservation_days",
    "utc_day",
]

DAY_MS = 86_400_000

LEDGER_MAX_WINDOW_MS = 31 * 86_400_000
AGAIN = ":again"
"""Suffix of the reservation of a line's second payments (a line key ends in ``#<n>``, never in this)."""
"""How far back the Special Account's ledger can be searched (KuCoin: 31 days, a page per day of it): a search
that would start earlier is not made; an operator decides."""

LEDGER_SKEW_MS = 15_000
"""Ledger entries are looked for from this long before our first send: KuCoin refuses a request signed more than
5 s off its clock, so ours is within 5 s of the one that stamps the ledger."""


def utc_day(now_ms: int) -> str:
    """The UTC calendar day (``YYYYMMDD``) of ``now_ms`` (epoch milliseconds): the day the ledger counts on."""
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y%m%d")


def reservation_days(days: Collection[str], now_ms: int, *, reach_ms: int) -> list[str]:
    """The days a send at ``now_ms`` must reserve on that the line holds no reservation of yet (``days``: the days
    it reserved on, from its intent): every UTC day the exchange may execute it on — from ``LEDGER_SKEW_MS`` before
    now (its clock may be behind ours) to ``reach_ms`` (the longest a request may be on its way) and the skew after.
    One day, or two in the seconds around midnight; oldest first."""
    window = days_between(now_ms - LEDGER_SKEW_MS, now_ms + reach_ms + LEDGER_SKEW_MS)
    return [day for day, _, _ in window if day not in days]


def executed_on(days: Collection[str], created_at_ms: int) -> tuple[list[str], str | None]:
    """Of a line's reservations ``days``, made for its only send, which it no longer needs now that the exchange
    says the transfer executed at ``created_at_ms`` (its clock): every other day's; and the day to count it on if
    none of ``days`` is that day (it executed later than a send can reach: the money moved, the day must count it),
    else ``None``."""
    day = utc_day(created_at_ms)
    if day not in days:
        return [], day
    return [d for d in days if d != day], None


def days_between(start_ms: int, end_ms: int) -> list[tuple[str, int, int]]:
    """The UTC days from ``start_ms``'s to ``end_ms``'s (both included, none when reversed), each as ``(YYYYMMDD,
    first ms, last ms)``, its bounds clipped to the range."""
    days: list[tuple[str, int, int]] = []
    start = start_ms // DAY_MS * DAY_MS
    while start_ms <= end_ms and start <= end_ms:
        days.append((utc_day(start), max(start, start_ms), min(start + DAY_MS - 1, end_ms)))
        start += DAY_MS
    return days


def may_have_refused(*, amount: Decimal, cap: Decimal | None, used: Mapping[str, Decimal]) -> str | None:
    """After a loss, of a funding line decided on one of the days of ``used`` (each day's use of the Special
    Account's daily cap as its ledger shows it, a transfer no known line explains included): the first day on
    which the cap could have refused it had that transfer been another line's — the day's use and the line's
    amount pass the cap — or ``None``. A currency without a cap is refused on any day."""
    for day in sorted(used):
        if cap is None or used[day] + amount > cap:
            return day
    return None


def again_by_day(times: int, executed_at: Iterable[int], held: Collection[str], now_ms: int) -> dict[str, int]:
    """On which days a line's ``times`` second payments (or possible ones) count, and how many on each: on each UTC
    day of ``executed_at`` (the ledger entries that may be them, ``settlement.second_payment_times``) as many as
    that day has entries, at most ``times`` — which entries are the second payments may be unknown, so every day
    that may hold one counts it; on every day the line holds a reservation of (``held``) when the ledger names none
    (a recheck that could not tell: the payment executed on a day one of its sends may have), or on ``now_ms``'s
    day when it holds none. Never fewer than the day a payment moved on."""
    if times <= 0:
        return {}
    per_day = Counter(utc_day(ms) for ms in executed_at)
    if per_day:
        return {day: min(times, n) for day, n in sorted(per_day.items())}
    return {day: times for day in (sorted(held) or [utc_day(now_ms)])}


def again_listed_by_ledger(
    transfer: TransferRecord | None, listed_before_ms: int, named: Collection[str] = frozenset()
) -> bool:
    """Whether a ledger read surely lists the second payments our record found of ``transfer``'s line (their
    reservation ``<line>:again``, ``money_steps._count_again``): the recheck found them listed, so they are once
    the line itself is; the hedge of a recheck that could not tell stays on top."""
    if transfer is None or not transfer.extra_paid or transfer.extra_unverified:
        return False
    return listed_by_ledger(transfer, listed_before_ms, named)


def listed_by_ledger(
    transfer: TransferRecord | None, listed_before_ms: int, named: Collection[str] = frozenset()
) -> bool:
    """Whether a ledger read surely lists the funding transfer our record shows (``transfer``, ``None`` when the
    record knows none): it is proven committed, and either the read names its orderId or clientOid (``named``: the
    ids the read's entries carry) or it was recorded so at or before ``listed_before_ms`` (the read's time less the
    ledger's lag). Anything else — not sent yet, in flight, sent on a guess, unknown — may be missing from the
    read, so its reservation counts on top of what the ledger lists."""
    if transfer is None or transfer.purpose is not TransferPurpose.FUND:
        return False
    if transfer.status is not TransferStatus.COMMITTED:
        return False
    if transfer.order_id in named or transfer.client_oid in named:
        return True
    return 0 < transfer.at_ms <= listed_before_ms
