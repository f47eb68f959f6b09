"""Values rendered for an operator: no Python reprs, moments in UTC."""

from __future__ import annotations

from decimal import Decimal

from cli.render import field, text, when


def test_collections_and_flags_read_as_words() -> None:
    assert text(("general", "spot")) == "general, spot"
    assert text([]) == "none" and text(None) == "none" and text(True) == "yes"
    assert text({"reason": "short of funds", "manual": False}) == "reason=short of funds, manual=no"
    assert text(Decimal("250.5")) == "250.5"


def test_epoch_milliseconds_read_as_utc_times_and_small_values_stay_numbers() -> None:
    assert when(1796214022577) == "2026-12-02 12:20:22Z" and when(None) == ""
    assert field("failed_at_ms", 1796214022577) == "2026-12-02 12:20:22Z"
    assert field("earlier_send_ms", 0) == "0" and field("retry_after_ms", 1500) == "1500"
    assert text({"at_ms": 1796214022577}) == "at_ms=2026-12-02 12:20:22Z"
