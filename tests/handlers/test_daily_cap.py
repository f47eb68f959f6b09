"""On which UTC day a send of a funding line counts against the Special Account's daily cap (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from handlers.daily_cap import reservation_day, utc_day


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_the_day_is_the_utc_calendar_day_to_the_millisecond() -> None:
    """The last millisecond before midnight UTC is the old day; midnight itself is the new one."""
    assert utc_day(ms("2026-12-01T23:59:59.999")) == "20261201"
    assert utc_day(ms("2026-12-02T00:00:00")) == "20261202"
    assert utc_day(0) == "19700101"


def test_a_first_send_reserves_on_its_day() -> None:
    assert reservation_day([], ms("2026-12-01T10:00:00")) == "20261201"


def test_a_resend_the_same_day_reserves_nothing_more() -> None:
    """The line already holds today's reservation: repeating it (a retry, a re-send) adds nothing."""
    assert reservation_day(["20261201"], ms("2026-12-01T23:59:59.999")) is None


def test_a_resend_after_midnight_reserves_on_the_new_day() -> None:
    """Yesterday's reservation does not cover a send today: it may pay today, so today's cap must take it."""
    assert reservation_day(["20261201"], ms("2026-12-02T00:00:00")) == "20261202"
    assert reservation_day(["20261201", "20261202"], ms("2026-12-02T08:00:00")) is None
