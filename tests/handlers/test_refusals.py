"""Which refused funding lines a retry decides again, and the event identity of a refusal after one (pure)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from handlers import commands as c
from handlers.desired import fold
from handlers.planner import ADOPTED_REASON, OFFBOARDED_REASON, plan
from handlers.records import Blocked, TransferPurpose, TransferRecord, TransferStatus
from handlers.refusals import (
    HEARD_REFUSAL_NOTE,
    RefusalCause,
    daily_cap_reason,
    redecidable,
    redecide,
    refusal_cause,
    refusal_identity,
    retryable_reason,
)
from tests.handlers.factory import POLICY, approved, created, funded, with_sub


def refused(key: str, reason: str, *, client_oid: str | None = None) -> TransferRecord:
    """A refused line as ``money_steps.refuse_funding`` (or an operator's verdict, with a clientOid) records it."""
    return TransferRecord(
        key=key,
        purpose=TransferPurpose.FUND,
        client_oid=client_oid,
        currency="USDT",
        amount=Decimal(100),
        sub_wallet="TRADE",
        status=TransferStatus.REFUSED,
        note=reason,
        at_ms=1,
    )


def test_the_planners_cap_refusals_are_recognised() -> None:
    """The reasons the planner writes today (no cap; over the cap) classify as causes a setting fixes."""
    no_cap = plan(fold([created(), approved(funding=(("ETH", "1"),))]), with_sub(), now_ms=100, policy=POLICY)
    assert isinstance(no_cap, c.RefuseFunding)
    assert refusal_cause(refused(no_cap.key, no_cap.reason)) is RefusalCause.NO_CUSTOMER_CAP
    over = plan(fold([created(), approved(funding=(("USDT", "5000"),))]), with_sub(), now_ms=100, policy=POLICY)
    assert isinstance(over, c.RefuseFunding)
    assert refusal_cause(refused(over.key, over.reason)) is RefusalCause.CUSTOMER_CAP


def test_the_daily_reservations_refusals_are_recognised() -> None:
    """The reasons the daily reservation writes (no daily cap; over it) classify as causes a setting or the next
    day fixes, and name the currency, the cap and what the day has used."""
    no_cap = daily_cap_reason(currency="BTC", cap=None, used=Decimal(0))
    assert refusal_cause(refused("e-kyc#0", no_cap)) is RefusalCause.NO_DAILY_CAP
    assert "BTC" in no_cap
    over = daily_cap_reason(currency="USDT", cap=Decimal("1000"), used=Decimal("950.5"))
    assert refusal_cause(refused("e-kyc#0", over)) is RefusalCause.DAILY_CAP
    assert "1000 USDT" in over and "used 950.5" in over


@pytest.mark.parametrize(
    ("reason", "client_oid"),
    [
        (OFFBOARDED_REASON, None),
        (ADOPTED_REASON, None),
        ("refused by an operator: duplicate request", "oid-1"),
        ("per-customer cap of 1000 USDT would be exceeded (already funded 0)", "oid-1"),  # a clientOid: it was sent
        ("something new", None),
    ],
)
def test_other_refusals_stand(reason: str, client_oid: str | None) -> None:
    """An offboarded, adopted or operator-refused line, or one that was sent, is never decided again."""
    record = with_sub(transfers={"e-kyc#0": refused("e-kyc#0", reason, client_oid=client_oid)})
    assert redecidable(record) == []
    with pytest.raises(ValueError, match="e-kyc#0"):
        redecide(record, ["e-kyc#0"])


def test_a_retry_takes_the_refusal_back_and_the_planner_decides_again() -> None:
    """Once the cap allows it, the line taken back is transferred under its first clientOid."""
    events = [created(), approved(funding=(("ETH", "1"),))]
    record = with_sub(
        transfers={
            "e-kyc#0": refused("e-kyc#0", "no per-customer funding cap is configured for ETH"),
            "e-old#0": funded("e-old#0"),
        }
    )
    assert redecidable(record) == ["e-kyc#0"]
    again = redecide(record, ["e-kyc#0"])
    assert "e-kyc#0" not in again.transfers and "e-old#0" in again.transfers
    assert again.redecided == {"e-kyc#0": 1}
    fixed = replace(POLICY, funding_caps={**POLICY.funding_caps, "ETH": Decimal(5)})
    step = plan(fold(events), again, now_ms=100, policy=fixed)
    assert isinstance(step, c.Transfer) and step.key == "e-kyc#0" and step.attempt == 0
    still = plan(fold(events), again, now_ms=100, policy=POLICY)
    assert isinstance(still, c.RefuseFunding)  # not fixed: refused again, as a new outcome
    assert refusal_identity(again, "e-kyc#0") == "e-kyc#0:r1"
    assert refusal_identity(record, "e-kyc#0") == "e-kyc#0"


def test_a_line_with_a_transfer_in_doubt_or_blocked_is_left_alone() -> None:
    """A refused entry whose line also has a blocked transfer step is not taken back (nothing is re-sent)."""
    entry = refused("e-kyc#0", "the Special Account's daily cap of 10 USDT would be exceeded (used 10)")
    record = with_sub(transfers={"e-kyc#0": entry}, blocked={"fund:e-kyc#0": Blocked(reason="x", at_ms=1)})
    assert redecidable(record) == []
    assert redecidable(with_sub(transfers={"e-kyc#0": entry})) == ["e-kyc#0"]
    assert redecidable(with_sub(transfers={"e-kyc#0": entry}, closed_at_ms=5)) == []


def test_only_a_caps_refusal_reads_as_retryable_as_told_or_as_heard() -> None:
    cap = "the Special Account's daily cap of 1000 USDT would be exceeded (used 900)"
    assert retryable_reason(cap) and retryable_reason(f"{HEARD_REFUSAL_NOTE}: {cap}")
    assert not retryable_reason("the customer was offboarded before this line was funded")
    assert not retryable_reason("refused by an operator: oncall") and not retryable_reason(None)
