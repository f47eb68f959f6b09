"""Seeding the Special Account's daily caps from its ledger after a loss of our state.

``provisioner recover`` seeds the day's caps from the ledger at once (``worker.recovery``), but the ledger lists a
transfer only after its lag (``PROVISIONER_LEDGER_LAG_MS``): a transfer in flight at the loss — executed by the
exchange, its answer never recorded — is not listed yet. So the recovery also stores from when every transfer
sent before the loss is listed (``FundingLedger.await_reseed``), and until then no funding line is sent against
the daily cap (the planner's ``SeedDailyCaps``). The first line decided after that moment seeds the caps again
(``seed_daily_caps``). Seeding counts what the ledger lists plus every reservation of a line our records do not show
paid early enough to be listed (after a rollback the day may hold reservations of lines sent only later, while the
ledger lists payments the restored day never reserved), and keeps the larger of that and what the day counts, so
workers doing it at once, or reserving meanwhile, lose nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

import structlog

from handlers.commands import SeedDailyCaps
from handlers.daily_cap import (
    AGAIN,
    DAY_MS,
    LEDGER_SKEW_MS,
    again_listed_by_ledger,
    days_between,
    listed_by_ledger,
    utc_day,
)
from handlers.journal import JournalAction
from worker.exchange.assets import Assets
from worker.provisioning.context import StepContext
from worker.provisioning.ledger_reads import LedgerSource
from worker.store.customers import CustomerStore
from worker.store.ledger import FundingLedger

__all__ = ["daily_use_in_ledger", "seed_caps_from_ledger", "seed_daily_caps"]

_log = structlog.get_logger(__name__)

_ID_FIELDS = frozenset({"orderId", "clientOid"})


def seed_caps_from_ledger(
    assets: Assets,
    ledger: FundingLedger,
    store: CustomerStore,
    currencies: Iterable[str],
    now_ms: int,
    *,
    settled_ms: int,
    sound: bool = False,
    heartbeat: Callable[[], None] = lambda: None,
) -> dict[str, str]:
    """Rebuild today's and yesterday's use of the Special Account's daily caps from its ledger (transfers out to
    sub-accounts, listed up to ``now_ms``): each day counts at least what the ledger shows moved plus the
    reservations of lines our records do not show in the read (``listed_by_ledger``: named by an entry, or
    committed ``settled_ms`` — how long after a send the ledger surely lists it — and the skew before the read).
    ``sound``: our state was not lost
    (an adoption): the day's reservations are our own record of what it paid and will pay, so it keeps the larger
    of its count and the ledger's. Returns ``YYYYMMDD:currency`` → the day's use, for the days the ledger shows
    something moved."""
    yesterday = (now_ms // DAY_MS - 1) * DAY_MS
    listed_before_ms = now_ms - settled_ms - LEDGER_SKEW_MS
    seeded: dict[str, str] = {}
    for day, first_ms, last_ms in days_between(yesterday, now_ms):
        moved: dict[str, Decimal] = {}
        named: set[str] = set()
        for currency in currencies:
            heartbeat()
            entries = assets.ledger_entries(currency=currency, direction="out", start_ms=first_ms, end_ms=last_ms)
            transfers = [e for e in entries if _is_transfer(e.biz_type)]
            if transfers:
                moved[currency] = sum((abs(e.amount) for e in transfers), Decimal(0))
                named.update(v for e in transfers for k, v in e.context_fields().items() if k in _ID_FIELDS)
        if not moved:
            continue
        reserved = ledger.reserved_lines(day)
        listed = reserved if sound else _listed_lines(store, reserved, listed_before_ms, named)
        for currency, amount in moved.items():
            used = ledger.seed(day=day, currency=currency, amount=amount, listed=listed)
            seeded[f"{day}:{currency}"] = str(used)
    return seeded


def _listed_lines(store: CustomerStore, lines: Iterable[str], listed_before_ms: int, named: set[str]) -> list[str]:
    """Of the reserved ``lines`` (``ref:key``), those whose transfer the ledger read surely lists by our records
    (``listed_by_ledger``)."""
    by_ref: dict[str, list[str]] = {}
    for line in lines:
        ref, _, key = line.partition(":")
        by_ref.setdefault(ref, []).append(key)
    records = store.load_many(list(by_ref))
    listed = []
    for ref, keys in by_ref.items():
        if ref not in records:
            continue
        transfers = records[ref].transfers
        for key in keys:
            if key.endswith(AGAIN):  # the line's second payments (``money_steps._count_again``)
                surely = again_listed_by_ledger(transfers.get(key.removesuffix(AGAIN)), listed_before_ms, named)
            else:
                surely = listed_by_ledger(transfers.get(key), listed_before_ms, named)
            if surely:
                listed.append(f"{ref}:{key}")
    return listed


def daily_use_in_ledger(
    assets: LedgerSource, currency: str, start_ms: int, end_ms: int, *, heartbeat: Callable[[], None] = lambda: None
) -> dict[str, Decimal]:
    """Each UTC day's use of the Special Account's daily cap of ``currency`` from ``start_ms`` to ``end_ms`` as its
    ledger shows it (transfers out to sub-accounts): ``YYYYMMDD`` → what moved, every day of the range listed."""
    heartbeat()
    entries = assets.ledger_entries(currency=currency, direction="out", start_ms=start_ms, end_ms=end_ms)
    used = {day: Decimal(0) for day, _, _ in days_between(start_ms, end_ms)}
    for e in entries:
        if _is_transfer(e.biz_type) and start_ms <= e.created_at <= end_ms:
            day = utc_day(e.created_at)
            used[day] = used.get(day, Decimal(0)) + abs(e.amount)
    return used


def _is_transfer(biz_type: str) -> bool:
    """Whether a ledger entry's ``bizType`` may be a transfer to a sub-account."""
    kind = biz_type.lower()
    return "transfer" in kind or not any(w in kind for w in ("deposit", "withdraw", "exchange", "trade", "fee"))


def seed_daily_caps(cmd: SeedDailyCaps, ctx: StepContext) -> None:
    """The ledger now lists every transfer sent before the loss: seed the day's caps from it, and record that they
    were (for every customer), journalled on the customer whose line asked first."""
    s = ctx.services
    read_at = ctx.now_ms()
    seeded = seed_caps_from_ledger(
        ctx.exchange.assets,
        s.ledger,
        s.store,
        s.daily_caps,
        read_at,
        settled_ms=s.policy.transfer_settled_ms,
        heartbeat=ctx.heartbeat,
    )
    counted = s.ledger.mark_reseeded(read_at_ms=read_at)
    _log.info("daily caps seeded from the ledger after a loss", seeded=seeded, due_at_ms=cmd.due_at_ms, counted=counted)
    ctx.commit(
        ctx.record,
        journal=[(JournalAction.DAILY_CAPS_SEEDED, {"seeded": seeded, "due_at_ms": cmd.due_at_ms, "counted": counted})],
    )
