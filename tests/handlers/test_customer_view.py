"""The upstream's view of a customer: stage, keys, each funding line's state, blocked steps with their fix; no
secret, KYC field or IP address."""

from __future__ import annotations

from handlers.customer_view import (
    AWAITING_LEDGER,
    AWAITING_REPUBLICATION,
    FIX_MANUAL,
    FIX_RETRY,
    FundingState,
    LastChange,
    Stage,
    customer_view,
)
from handlers.desired import fold
from handlers.records import Blocked, KycProgress, KycStage, TransferStatus
from tests.handlers.factory import CUSTOMER, UID, approved, created, funded, key, offboarded, record, with_sub


def view(events: list, rec, last=None):  # type: ignore[no-untyped-def]
    return customer_view(CUSTOMER, fold(events), rec, last)


def test_stages_follow_the_lifecycle() -> None:
    assert view([approved()], None).stage is Stage.RECEIVED
    assert view([created()], None).stage is Stage.CREATING
    assert view([created()], with_sub()).stage is Stage.AWAITING_APPROVAL
    assert view([created(), approved()], with_sub()).stage is Stage.PROVISIONING
    review = with_sub(kyc=KycProgress(event_id="e-kyc", stage=KycStage.PROCESS))
    assert view([created(), approved()], review).stage is Stage.KYC_REVIEW
    rejected = with_sub(kyc=KycProgress(event_id="e-kyc", stage=KycStage.REJECT, reason="blurred"))
    assert view([created(), approved()], rejected).stage is Stage.KYC_REJECTED
    assert view([created(), approved()], with_sub(keys=(key(0),))).stage is Stage.ACTIVE
    assert view([created(), approved(), offboarded()], with_sub(keys=(key(0),))).stage is Stage.OFFBOARDING
    assert view([created(), approved(), offboarded()], with_sub(closed_at_ms=5)).stage is Stage.CLOSED


def test_each_funding_line_has_its_state_and_blocked_steps_say_what_fixes_them() -> None:
    events = [created(), approved(funding=(("USDT", "100"), ("BTC", "0.1"), ("USDT", "5"), ("USDT", "7")))]
    rec = with_sub(
        keys=(key(0), key(1, revoked=True)),
        transfers={
            "e-kyc#0": funded("e-kyc#0"),
            "e-kyc#2": funded("e-kyc#2", amount="5", status=TransferStatus.REFUSED).model_copy(
                update={"note": "above the per-customer cap"}
            ),
        },
        blocked={
            "fund:e-kyc#1": Blocked(reason="transfer outcome unknown", at_ms=7, manual=True),
            "key:2": Blocked(reason="key cap reached", at_ms=9),
        },
    )
    shown = view(events, rec, LastChange(at_ms=9, action="blocked"))
    assert [(f.line, f.state, f.reason) for f in shown.funding] == [
        ("e-kyc#0", FundingState.COMMITTED, None),
        ("e-kyc#1", FundingState.BLOCKED, "transfer outcome unknown"),
        ("e-kyc#2", FundingState.REFUSED, "above the per-customer cap"),
        ("e-kyc#3", FundingState.PENDING, None),
    ]
    assert [(b.step, b.fix) for b in shown.blocked] == [("fund:e-kyc#1", FIX_MANUAL), ("key:2", FIX_RETRY)]
    assert [k.api_key for k in shown.keys] == ["key0"], "only live keys"
    assert shown.sub_account_uid == UID and shown.last_change == LastChange(at_ms=9, action="blocked")


def test_the_view_holds_no_secret_kyc_field_or_ip_address() -> None:
    text = view([created(), approved(ips=("203.0.114.10",))], with_sub(keys=(key(0),))).model_dump_json()
    assert "203.0.114.10" not in text and "sealed" not in text and "token" not in text
    assert text.count(CUSTOMER) == 1
    assert view([created()], record()).sub_account_uid is None


def test_after_a_loss_a_pending_line_says_it_waits_for_the_declared_re_publication() -> None:
    """Until the on-call declares the upstream's re-publication after a loss complete, nothing is sent for a
    recovered customer: each pending line says why (and what ends the wait); a recorded line keeps its state."""
    events = [created(), approved(funding=(("USDT", "100"), ("USDT", "5")))]
    rec = with_sub(keys=(key(0),), recovered_at_ms=3, transfers={"e-kyc#0": funded("e-kyc#0")})
    waiting = customer_view(CUSTOMER, fold(events), rec, None, republication_declared=False)
    assert [(f.state, f.reason) for f in waiting.funding] == [
        (FundingState.COMMITTED, None),
        (FundingState.PENDING, AWAITING_REPUBLICATION),
    ]
    declared = customer_view(CUSTOMER, fold(events), rec, None, republication_declared=True)
    assert [f.reason for f in declared.funding] == [None, None]


def test_after_a_loss_every_customers_pending_line_says_it_waits_for_the_ledger_until_the_caps_count_it() -> None:
    """Until the day's caps count what the Special Account's ledger lists once every transfer sent before a loss
    is listed, no line is sent for any customer, one new since the loss included: each pending line says so; the
    wait for the declared re-publication, longer, is what a recovered customer's line says."""
    events = [created(), approved(funding=(("USDT", "100"), ("USDT", "5")))]
    new = with_sub(keys=(key(0),), transfers={"e-kyc#0": funded("e-kyc#0")})
    waiting = customer_view(CUSTOMER, fold(events), new, None, caps_counted=False)
    assert [(f.state, f.reason) for f in waiting.funding] == [
        (FundingState.COMMITTED, None),
        (FundingState.PENDING, AWAITING_LEDGER),
    ]
    assert [f.reason for f in customer_view(CUSTOMER, fold(events), new, None).funding] == [None, None]
    recovered = new.model_copy(update={"recovered_at_ms": 3})
    both = customer_view(CUSTOMER, fold(events), recovered, None, republication_declared=False, caps_counted=False)
    assert [f.reason for f in both.funding] == [None, AWAITING_REPUBLICATION]
