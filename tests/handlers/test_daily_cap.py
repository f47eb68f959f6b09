"""On which UTC day a send of a funding line counts against the Special Account's daily cap (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from handlers.daily_cap import (
    again_by_day,
    again_listed_by_ledger,
    days_between,
    executed_on,
    listed_by_ledger,
    may_have_refused,
    reservation_days,
    utc_day,
)
from handlers.records import TransferPurpose, TransferRecord, TransferStatus


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_the_day_is_the_utc_calendar_day_to_the_millisecond() -> None:
    """The last millisecond before midnight UTC is the old day; midnight itself is the new one."""
    assert utc_day(ms("2026-12-01T23:59:59.999")) == "20261201"
    assert utc_day(ms("2026-12-02T00:00:00")) == "20261202"
    assert utc_day(0) == "19700101"


REACH_MS = 45_000  # the lock's time-to-live: the longest a request may be on its way


def test_a_first_send_reserves_on_its_day() -> None:
    assert reservation_days([], ms("2026-12-01T10:00:00"), reach_ms=REACH_MS) == ["20261201"]


def test_a_resend_the_same_day_reserves_nothing_more() -> None:
    """The line already holds today's reservation: repeating it (a retry, a re-send) adds nothing."""
    assert reservation_days(["20261201"], ms("2026-12-01T12:00:00"), reach_ms=REACH_MS) == []


def test_a_resend_after_midnight_reserves_on_the_new_day() -> None:
    """Yesterday's reservation does not cover a send today: it may pay today, so today's cap must take it."""
    assert reservation_days(["20261201"], ms("2026-12-02T00:01:00"), reach_ms=REACH_MS) == ["20261202"]
    assert reservation_days(["20261201", "20261202"], ms("2026-12-02T08:00:00"), reach_ms=REACH_MS) == []


def test_a_send_that_may_reach_the_exchange_after_midnight_reserves_on_both_days() -> None:
    """A request sent just before midnight may execute after it (it may be on its way until the lock expires, and
    the exchange's clock may be ahead of ours by the skew): both days' caps must take it."""
    both = ["20261201", "20261202"]
    assert reservation_days([], ms("2026-12-01T23:59:59.400"), reach_ms=REACH_MS) == both
    assert reservation_days([], ms("2026-12-01T23:59:00.100"), reach_ms=REACH_MS) == both  # 45 s + 15 s skew
    assert reservation_days([], ms("2026-12-01T23:58:59.999"), reach_ms=REACH_MS) == ["20261201"]
    assert reservation_days(["20261201"], ms("2026-12-01T23:59:30"), reach_ms=REACH_MS) == ["20261202"]


def test_a_send_just_after_midnight_reserves_on_the_day_the_exchange_may_still_show() -> None:
    """Our clock may be ahead of the exchange's by the skew: a send at 00:00:10 may be stamped 23:59:58."""
    both = ["20261201", "20261202"]
    assert reservation_days([], ms("2026-12-02T00:00:10"), reach_ms=REACH_MS) == both
    assert reservation_days([], ms("2026-12-02T00:00:15.001"), reach_ms=REACH_MS) == ["20261202"]


def test_a_transfer_of_one_send_keeps_only_the_day_it_executed_on() -> None:
    both = ("20261201", "20261202")
    assert executed_on(both, ms("2026-12-02T00:00:00.600")) == (["20261201"], None)
    assert executed_on(both, ms("2026-12-01T23:59:59.900")) == (["20261202"], None)
    assert executed_on(("20261201",), ms("2026-12-01T23:59:59.900")) == ([], None)


def test_a_transfer_executed_on_a_day_it_holds_nothing_of_counts_there() -> None:
    """Later than a request can be on its way (a gateway that held it): the money moved that day all the same."""
    assert executed_on(("20261201",), ms("2026-12-02T00:03:00")) == ([], "20261202")


def test_the_days_between_two_moments_are_clipped_to_them() -> None:
    day = 86_400_000
    two = [("19700102", day + 5, 2 * day - 1), ("19700103", 2 * day, 3 * day - 1)]
    assert days_between(day + 5, 3 * day - 1) == two
    assert days_between(day + 5, day + 5) == [("19700102", day + 5, day + 5)]
    assert days_between(day + 5, day + 4) == []


def test_a_line_may_have_been_refused_on_a_day_whose_use_and_its_amount_pass_the_cap() -> None:
    """After a loss, a transfer tied to a line by elimination only: had it been another line's, the line could
    have been refused by the daily cap on a day whose use (the transfer included) and the line's amount pass it."""
    used = {"20260102": Decimal("600"), "20260101": Decimal("100")}
    assert may_have_refused(amount=Decimal("600"), cap=Decimal("1000"), used=used) == "20260102"
    assert may_have_refused(amount=Decimal("400"), cap=Decimal("1000"), used=used) is None
    assert may_have_refused(amount=Decimal("900.00000001"), cap=Decimal("1000"), used=used) == "20260101"
    assert may_have_refused(amount=Decimal("1"), cap=None, used=used) == "20260101"  # no cap: always refused
    assert may_have_refused(amount=Decimal("1"), cap=None, used={}) is None  # no day it could have been decided on


def _transfer(status: TransferStatus, at_ms: int, purpose: TransferPurpose = TransferPurpose.FUND) -> TransferRecord:
    return TransferRecord(
        key="topup:1#0",
        purpose=purpose,
        client_oid="oid",
        currency="USDT",
        amount=Decimal(400),
        sub_wallet="TRADE",
        status=status,
        at_ms=at_ms,
    )


def test_only_a_transfer_proven_committed_before_the_ledgers_lag_is_surely_listed() -> None:
    """The re-seed after a loss counts a reservation on top of the ledger unless its line is surely in the read."""
    assert listed_by_ledger(_transfer(TransferStatus.COMMITTED, 1_000), listed_before_ms=1_000)
    assert not listed_by_ledger(_transfer(TransferStatus.COMMITTED, 1_001), listed_before_ms=1_000)  # within the lag
    assert not listed_by_ledger(_transfer(TransferStatus.ACCEPTED, 500), listed_before_ms=1_000)  # may yet fail
    assert not listed_by_ledger(_transfer(TransferStatus.REFUSED, 500), listed_before_ms=1_000)
    assert not listed_by_ledger(_transfer(TransferStatus.COMMITTED, 500, TransferPurpose.SWEEP), listed_before_ms=1_000)
    assert not listed_by_ledger(None, listed_before_ms=1_000)  # the record knows no transfer (not sent, or lost)
    named = _transfer(TransferStatus.COMMITTED, 1_001).model_copy(update={"order_id": "o-1"})
    assert listed_by_ledger(named, listed_before_ms=1_000, named={"o-1"})  # the read names it: listed at once
    assert listed_by_ledger(named.model_copy(update={"order_id": None}), 1_000, named={"oid"})  # by its clientOid
    assert not listed_by_ledger(named.model_copy(update={"status": TransferStatus.ACCEPTED}), 1_000, named={"o-1"})


def test_a_lines_second_payments_are_listed_with_it_unless_they_are_a_hedge() -> None:
    """The reservation of a line's second payments (``<line>:again``) is surely listed by a ledger read that surely
    lists the line, when the recheck found them in the ledger; the hedge of a recheck that could not tell stays on
    top (adv24: a rollback's re-seed counted a found second payment twice and refused a line that fitted)."""
    line = TransferRecord(
        key="e#0",
        purpose=TransferPurpose.FUND,
        client_oid="oid",
        currency="USDT",
        amount=Decimal("300"),
        sub_wallet="TRADE",
        status=TransferStatus.COMMITTED,
        at_ms=1_000,
    )
    assert not again_listed_by_ledger(line, 5_000), "nothing found twice: no such reservation to list"
    found = line.model_copy(update={"extra_paid": 1})
    assert again_listed_by_ledger(found, 5_000)
    assert not again_listed_by_ledger(found, 500), "the line itself may be missing from the read"
    assert not again_listed_by_ledger(found.model_copy(update={"extra_unverified": True}), 5_000)


def test_second_payments_count_on_the_days_they_executed_on() -> None:
    """Two entries after midnight, one second payment: today counts it, not the line's first day."""
    after = [ms("2026-12-02T00:00:01"), ms("2026-12-02T00:00:40")]
    held = ["20261201", "20261202"]
    assert again_by_day(1, after, held, ms("2026-12-02T00:01:00")) == {"20261202": 1}


def test_a_second_payment_that_may_be_either_of_two_days_counts_on_both() -> None:
    """Entries on both sides of midnight, one of them the line's first payment: which is the second is unknown, so
    each day counts one — never fewer than the day it moved on."""
    around = [ms("2026-12-01T23:59:59"), ms("2026-12-02T00:00:02")]
    assert again_by_day(1, around, [], ms("2026-12-02T00:01:00")) == {"20261201": 1, "20261202": 1}
    assert again_by_day(2, around, [], ms("2026-12-02T00:01:00")) == {"20261201": 1, "20261202": 1}


def test_second_payments_the_ledger_cannot_place_count_on_every_day_the_line_holds() -> None:
    assert again_by_day(1, [], ["20261202", "20261201"], ms("2026-12-02T10:00:00")) == {
        "20261201": 1,
        "20261202": 1,
    }
    assert again_by_day(1, [], [], ms("2026-12-02T10:00:00")) == {"20261202": 1}
    assert again_by_day(0, [ms("2026-12-02T10:00:00")], [], ms("2026-12-02T10:00:00")) == {}
