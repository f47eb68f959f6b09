"""Step ids: one constructor per kind, and what an operator types is parsed back to the same id (pure)."""

from __future__ import annotations

import pytest

from handlers import steps
from handlers.records import CustomerRecord


@pytest.mark.parametrize(
    ("built", "text"),
    [
        (steps.SUBACCOUNT, "subaccount"),
        (steps.KYC, "kyc"),
        (steps.SWEEP, "sweep"),
        (steps.fund("evt-1#0"), "fund:evt-1#0"),
        (steps.issue(3), "key:3"),
        (steps.update("k-1"), "update:k-1"),
        (steps.revoke("k-1"), "revoke:k-1"),
        (steps.double("evt-1#2"), "double:evt-1#2"),
    ],
)
def test_each_constructor_builds_the_stored_id_and_parse_gives_it_back(built: str, text: str) -> None:
    assert built == text
    assert steps.parse(text) == built


def test_a_funding_step_gives_back_its_line() -> None:
    assert steps.is_fund(steps.fund("e#1")) and steps.funding_line(steps.fund("e#1")) == "e#1"
    assert not steps.is_fund(steps.double("e#1"))
    with pytest.raises(ValueError, match="not a funding step"):
        steps.funding_line(steps.SWEEP)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("refund:e#1", "step 'refund:e#1': unknown kind 'refund'"),
        ("swept", "step 'swept': unknown kind 'swept'"),
        ("sweep:1", "step 'sweep:1': unknown kind 'sweep'"),
        ("fund:", "step 'fund:': a fund step names its funding line"),
        ("key:new", "step 'key:new': a key step names its generation"),
    ],
)
def test_parse_names_the_step_and_what_is_wrong_with_it(text: str, says: str) -> None:
    with pytest.raises(ValueError) as raised:
        steps.parse(text)
    assert str(raised.value).startswith(says)


def test_a_stored_record_keeps_its_step_ids_byte_for_byte() -> None:
    stored = (
        '{"ref":"c1","customer_id":"cust-1","blocked":{"fund:evt-1#0":{"reason":"refused","at_ms":5,"manual":false,'
        '"intent":null,"reported":true},"sweep":{"reason":"held","at_ms":6,"manual":false,"intent":null,'
        '"reported":false}},"retry_counts":{"fund:evt-1#0":2,"subaccount":1}}'
    )
    record = CustomerRecord.model_validate_json(stored)
    assert set(record.blocked) == {steps.fund("evt-1#0"), steps.SWEEP}
    assert record.retry_counts[steps.SUBACCOUNT] == 1
    again = CustomerRecord.model_validate_json(record.model_dump_json())
    assert again == record
    assert '"blocked":{"fund:evt-1#0":{"reason":"refused"' in record.model_dump_json()
