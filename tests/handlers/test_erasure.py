"""When a closed customer's personal data is due for erasure, and which customers may be erased at all."""

from __future__ import annotations

import pytest

from handlers.erasure import ErasureRefused, check_erasable, erased_id, erasure_due
from handlers.records import CustomerRecord

DAY = 86_400_000


def _closed(at_ms: int | None, customer_id: str = "ann@example.org") -> CustomerRecord:
    return CustomerRecord.new("r1", customer_id).model_copy(update={"closed_at_ms": at_ms})


def test_due_once_the_retention_period_after_the_close_has_passed() -> None:
    record = _closed(10 * DAY)
    assert not erasure_due(record, now_ms=39 * DAY, retention_ms=30 * DAY)
    assert erasure_due(record, now_ms=40 * DAY, retention_ms=30 * DAY)


def test_never_due_while_open_once_erased_or_without_a_retention_period() -> None:
    assert not erasure_due(_closed(None), now_ms=400 * DAY, retention_ms=DAY)
    assert not erasure_due(_closed(DAY, erased_id("r1")), now_ms=400 * DAY, retention_ms=DAY)
    assert not erasure_due(_closed(DAY), now_ms=400 * DAY, retention_ms=None)
    assert not erasure_due(None, now_ms=400 * DAY, retention_ms=DAY)


def test_only_a_closed_customer_may_be_erased() -> None:
    with pytest.raises(ErasureRefused, match="not closed: offboard it first"):
        check_erasable(_closed(None), "r1")
    with pytest.raises(ErasureRefused, match="no such customer"):
        check_erasable(None, "r1")
    assert check_erasable(_closed(DAY), "r1").closed_at_ms == DAY


def test_an_erased_id_is_still_a_valid_customer_id() -> None:
    from pydantic import TypeAdapter

    from handlers.events import CustomerId

    assert TypeAdapter(CustomerId).validate_python(erased_id("c3b0ffd4e9cbaa1c932bf")) == "erased:c3b0ffd4e9cbaa1c932bf"
