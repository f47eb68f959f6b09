"""The planner, for every event type and every kind of recorded state."""

from __future__ import annotations

from decimal import Decimal

import pytest

from handlers import commands as c
from handlers.desired import fold
from handlers.planner import Policy, TransferVerdict, judge_transfer, plan
from handlers.records import (
    BalanceSnapshot,
    Blocked,
    Intent,
    IntentKind,
    KycProgress,
    KycStage,
    TransferPurpose,
)
from tests.handlers.factory import (
    NAMING,
    POLICY,
    REF,
    UID,
    approved,
    created,
    funded,
    ip_changed,
    key,
    offboarded,
    record,
    rotation,
    with_sub,
)


def step(events, rec, now=100, policy=POLICY):
    return plan(fold(events), rec, now_ms=now, policy=policy)


def test_nothing_before_the_customer_exists() -> None:
    """Without customer.created there is nothing to do, whatever else arrived."""
    assert isinstance(step([], record()), c.Idle)
    assert step([approved()], record()) == c.Idle("waiting for customer.created")


def test_created_asks_for_the_sub_account_under_its_pseudonymous_name() -> None:
    """customer.created → CreateSubAccount with attempt 0's derived name (not the customer id)."""
    result = step([created()], record())
    assert result == c.CreateSubAccount(NAMING.account_name("cust-1", 0), 0)
    assert "cust" not in result.account_name


def test_next_name_attempt_after_a_taken_name() -> None:
    """name_attempt moves the name on; each attempt's name differs."""
    result = step([created()], record(name_attempt=3))
    assert result == c.CreateSubAccount(NAMING.account_name("cust-1", 3), 3)
    assert result.account_name != NAMING.account_name("cust-1", 0)


def test_waits_for_kyc_once_the_sub_account_exists() -> None:
    assert step([created()], with_sub()) == c.Idle("waiting for customer.kyc_approved")


def test_funding_comes_before_the_key_with_the_balance_known_from_our_records() -> None:
    """The first funding line is transferred before any key exists; its 'before' balance is 0, from records."""
    events = [created(), approved(funding=(("USDT", "250"), ("USDT", "50")))]
    result = step(events, with_sub())
    assert isinstance(result, c.Transfer)
    assert (result.key, result.amount, result.direction, result.expected_before) == (
        "e-kyc#0",
        Decimal(250),
        "OUT",
        Decimal(0),
    )
    assert result.client_oid == NAMING.funding_client_oid(REF, "e-kyc#0", 0)
    second = step(events, with_sub(transfers={"e-kyc#0": funded("e-kyc#0", amount="250")}))
    assert isinstance(second, c.Transfer)
    assert (second.key, second.expected_before) == ("e-kyc#1", Decimal(250))


def test_funding_above_the_per_customer_cap_is_refused_not_split() -> None:
    """A line that would take the customer above the cap is refused whole."""
    events = [created(), approved(funding=(("USDT", "900"), ("USDT", "200")))]
    result = step(events, with_sub(transfers={"e-kyc#0": funded("e-kyc#0", amount="900")}))
    assert isinstance(result, c.RefuseFunding)
    assert result.key == "e-kyc#1"
    assert "cap of 1000 USDT" in result.reason


def test_funding_in_a_currency_without_cap_is_refused() -> None:
    events = [created(), approved(funding=(("ETH", "1"),))]
    assert isinstance(step(events, with_sub()), c.RefuseFunding)


def test_key_issued_after_funding_with_canonical_access() -> None:
    """With funding settled, the key is issued: generation 0, sorted permissions, canonical IP order."""
    events = [
        created(),
        approved(ips=("203.0.113.10", "10.0.0.1"), permissions=("spot", "general"), funding=(("USDT", "1"),)),
    ]
    result = step(events, with_sub(transfers={"e-kyc#0": funded("e-kyc#0")}))
    assert result == c.IssueApiKey(UID, 0, "prov-g0000", ("general", "spot"), ("10.0.0.1", "203.0.113.10"))


def test_converged_customer_wakes_up_when_its_key_gets_old() -> None:
    result = step([created(), approved()], with_sub(keys=(key(0, created_at_ms=50),)), now=100)
    assert result == c.Idle("converged", 50 + POLICY.key_max_age_ms)


def test_newer_ip_change_updates_the_key() -> None:
    """An IP change that occurred after the approval replaces the whitelist of the live key."""
    events = [created(), approved(minute=1), ip_changed("e-ip", 5, "198.51.100.7")]
    result = step(events, with_sub(keys=(key(0),)))
    assert result == c.UpdateApiKey(UID, "key0", "prov-g0000", ("general", "spot"), ("198.51.100.7",))


def test_older_ip_change_loses_to_the_newer_approval() -> None:
    """Re-ordered delivery: an IP change that occurred before the approval does not win."""
    events = [created(), ip_changed("e-ip", 0, "198.51.100.7"), approved(minute=1)]
    assert isinstance(step(events, with_sub(keys=(key(0),))), c.Idle)


def test_rotation_issues_the_next_generation_then_revokes_the_old_after_grace() -> None:
    events = [created(), approved(minute=1), rotation("e-rot", 2)]
    assert step(events, with_sub(keys=(key(0),))) == c.IssueApiKey(
        UID, 1, "prov-g0001", ("general", "spot"), ("203.0.113.10",)
    )
    both = with_sub(keys=(key(0), key(1, created_at_ms=1000)))
    assert step(events, both, now=5000) == c.Idle("converged", 1000 + POLICY.rotation_grace_ms)
    assert step(events, both, now=11_000) == c.RevokeApiKey(UID, "key0", "rotated")


def test_rotation_request_from_before_the_first_approval_is_ignored() -> None:
    events = [created(), rotation("e-rot", 0), approved(minute=1)]
    assert isinstance(step(events, with_sub(keys=(key(0),))), c.Idle)


def test_old_key_is_rotated_by_age() -> None:
    result = step([created(), approved()], with_sub(keys=(key(0, created_at_ms=0),)), now=POLICY.key_max_age_ms)
    assert result == c.RotateForAge(0)
    rotated = with_sub(keys=(key(0),), age_rotations=1)
    assert isinstance(step([created(), approved()], rotated), c.IssueApiKey)


def test_offboarding_revokes_every_key_then_reads_and_sweeps_then_closes() -> None:
    events = [created(), approved(), rotation("e-rot", 2), offboarded()]
    assert step(events, with_sub(keys=(key(0), key(1)))) == c.RevokeApiKey(UID, "key0", "offboarded")
    assert step(events, with_sub(keys=(key(0, revoked=True), key(1)))) == c.RevokeApiKey(UID, "key1", "offboarded")
    no_keys = with_sub(keys=(key(0, revoked=True), key(1, revoked=True)))
    assert step(events, no_keys) == c.ReadBalances(UID)
    snap = BalanceSnapshot(at_ms=1, sweep_round=0, wallets={"MAIN": {}, "TRADE": {"USDT": (Decimal(7), Decimal(5))}})
    sweep = step(events, no_keys.model_copy(update={"balances": snap}))
    assert isinstance(sweep, c.Transfer)
    assert (sweep.direction, sweep.amount, sweep.expected_before, sweep.sub_wallet) == (
        "IN",
        Decimal(5),
        Decimal(7),
        "TRADE",
    )
    assert step(events, no_keys.model_copy(update={"balances": snap, "sweep_round": 1})) == c.ReadBalances(UID)
    empty = BalanceSnapshot(at_ms=1, sweep_round=1, wallets={"MAIN": {}, "TRADE": {}})
    closing = step(events, no_keys.model_copy(update={"balances": empty, "sweep_round": 1}))
    assert closing == c.CloseCustomer("offboarded")


@pytest.mark.parametrize(
    "wallets",
    [
        {"TRADE": {"USDT": (Decimal(2), Decimal(0))}},
        {"TRADE_HF": {"BTC": (Decimal("0.1"), Decimal("0.1"))}},
        {"MARGIN": {"USDT": (Decimal(5), Decimal(5))}},
    ],
)
def test_offboarding_does_not_close_with_money_it_cannot_move(wallets) -> None:
    """Review finding: funds held in orders, or in HF/margin wallets the ND transfer cannot reach, block the
    offboarding for a human instead of closing with money left behind."""
    events = [created(), approved(), offboarded()]
    snapshot = BalanceSnapshot(at_ms=1, sweep_round=0, wallets=wallets)
    result = step(events, with_sub(balances=snapshot))
    assert isinstance(result, c.HoldOffboarding)
    assert "remain" in result.reason


def test_offboarded_dominates_pending_work() -> None:
    """Unfunded lines and missing keys are not pursued once the customer is offboarded."""
    events = [created(), approved(funding=(("USDT", "5"),)), offboarded()]
    assert step(events, with_sub()) == c.ReadBalances(UID)


@pytest.mark.parametrize("rec", [record(), record(name_attempt=1)])
def test_offboarded_before_created_or_before_the_sub_account_closes_without_creating(rec) -> None:
    assert isinstance(step([offboarded()], rec), c.CloseCustomer)
    assert isinstance(step([created(), offboarded()], rec), c.CloseCustomer)


def test_closed_customer_does_nothing() -> None:
    assert step([created(), approved()], with_sub(closed_at_ms=5)) == c.Idle("closed")


@pytest.mark.parametrize(
    ("kind", "token", "details", "expected"),
    [
        (IntentKind.CREATE_SUB_ACCOUNT, "nd0x", {"attempt": 0}, c.ResolveSubAccount("nd0x", 0)),
        (IntentKind.ISSUE_KEY, "prov-g0000", {"uid": UID, "generation": 0}, c.ResolveApiKey(UID, 0, "prov-g0000")),
        (
            IntentKind.UPDATE_KEY,
            "key0",
            {"uid": UID, "label": "prov-g0000", "permissions": ["spot"], "ip_whitelist": ["10.0.0.1"]},
            c.UpdateApiKey(UID, "key0", "prov-g0000", ("spot",), ("10.0.0.1",)),
        ),
        (IntentKind.REVOKE_KEY, "key0", {"uid": UID, "reason": "rotated"}, c.ResolveRevoke(UID, "key0", "rotated")),
        (IntentKind.TRANSFER, "f1", {"uid": UID, "key": "e#0"}, c.ResolveTransfer(UID, "e#0")),
        (IntentKind.SUBMIT_KYC, "e-kyc", {"uid": UID}, c.CheckKyc(UID)),
    ],
)
def test_an_unsettled_intent_is_resolved_by_reading_after_it_settles(kind, token, details, expected) -> None:
    """An intent without outcome waits out the settle delay, then is resolved by reading, never re-sent blindly."""
    rec = with_sub(pending=Intent(kind=kind, token=token, started_at_ms=1000, details=details))
    events = [created(), approved()]
    assert step(events, rec, now=1000 + POLICY.resolve_delay_ms - 1) == c.Idle(
        f"waiting for {kind} to settle before reading the exchange", 1000 + POLICY.resolve_delay_ms
    )
    assert step(events, rec, now=1000 + POLICY.resolve_delay_ms) == expected


def test_a_refused_create_is_checked_at_once() -> None:
    """When the exchange said no, nothing of ours is in flight: list our sub-accounts immediately."""
    pending = Intent(
        kind=IntentKind.CREATE_SUB_ACCOUNT,
        token="nd0x",
        started_at_ms=1000,
        details={"attempt": 0, "refused": "accountName already exists"},
    )
    assert step([created()], record(pending=pending), now=1001) == c.ResolveSubAccount("nd0x", 0)


def test_blocked_steps_are_skipped() -> None:
    events = [created(), approved(funding=(("USDT", "5"),))]
    blocked = {"fund:e-kyc#0": Blocked(reason="insufficient", at_ms=1)}
    assert isinstance(step(events, with_sub(blocked=blocked)), c.IssueApiKey)
    assert step([created()], record(blocked={"subaccount": Blocked(reason="x", at_ms=1)})) == c.Idle(
        "sub-account creation is blocked"
    )


def test_a_replayed_funding_line_gets_a_new_client_oid() -> None:
    events = [created(), approved(funding=(("USDT", "5"),))]
    result = step(events, with_sub(retry_counts={"fund:e-kyc#0": 1}))
    assert isinstance(result, c.Transfer)
    assert result.client_oid == NAMING.funding_client_oid(REF, "e-kyc#0", 1)
    assert result.client_oid != NAMING.funding_client_oid(REF, "e-kyc#0", 0)


def test_funding_after_a_key_exists_reads_the_balance_first() -> None:
    """Once a key exists the customer may trade: 'before' is unknown to us and must be read."""
    events = [created(), approved(funding=(("USDT", "5"),)), approved("e-kyc2", 3, funding=(("USDT", "7"),))]
    rec = with_sub(keys=(key(0),), transfers={"e-kyc#0": funded("e-kyc#0", amount="5")})
    result = step(events, rec)
    assert isinstance(result, c.Transfer)
    assert (result.key, result.expected_before) == ("e-kyc2#0", None)


PROXY = Policy(naming=NAMING, funding_caps={"USDT": Decimal(1000)}, proxy_kyc=True, kyc_poll_ms=60_000)


def test_proxy_kyc_submits_then_waits_then_gates_keys_and_funding() -> None:
    events = [created(), approved(funding=(("USDT", "5"),))]
    docs = fold(events, documents_held={"e-kyc"})
    assert plan(docs, with_sub(), now_ms=0, policy=PROXY) == c.SubmitKyc(UID, "e-kyc")
    waiting = with_sub(kyc=KycProgress(event_id="e-kyc", stage=KycStage.PROCESS, next_check_ms=500))
    assert plan(docs, waiting, now_ms=100, policy=PROXY) == c.Idle("waiting for the KYC review", 500)
    assert plan(docs, waiting, now_ms=500, policy=PROXY) == c.CheckKyc(UID)
    rejected = with_sub(kyc=KycProgress(event_id="e-kyc", stage=KycStage.REJECT, reason="blurry"))
    assert plan(docs, rejected, now_ms=0, policy=PROXY) == c.Idle("KYC rejected")
    passed = with_sub(kyc=KycProgress(event_id="e-kyc", stage=KycStage.PASS))
    assert isinstance(plan(docs, passed, now_ms=0, policy=PROXY), c.Transfer)


def test_without_documents_proxy_kyc_does_not_apply() -> None:
    """The upstream did its own KYC: approval without documents provisions directly."""
    events = [created(), approved()]
    assert isinstance(plan(fold(events), with_sub(), now_ms=0, policy=PROXY), c.IssueApiKey)


def test_a_new_approval_with_documents_resubmits_after_a_rejection() -> None:
    events = [created(), approved(), approved("e-kyc2", 5)]
    docs = fold(events, documents_held={"e-kyc", "e-kyc2"})
    rejected = with_sub(kyc=KycProgress(event_id="e-kyc", stage=KycStage.REJECT, reason="blurry"))
    assert plan(docs, rejected, now_ms=0, policy=PROXY) == c.SubmitKyc(UID, "e-kyc2")


@pytest.mark.parametrize(
    ("direction", "observed", "verdict"),
    [
        ("OUT", "150", TransferVerdict.COMMITTED),
        ("OUT", "100", TransferVerdict.NOT_COMMITTED),
        ("OUT", "120", TransferVerdict.AMBIGUOUS),
        ("IN", "50", TransferVerdict.COMMITTED),
        ("IN", "100", TransferVerdict.NOT_COMMITTED),
        ("IN", "0", TransferVerdict.AMBIGUOUS),
    ],
)
def test_judge_transfer_by_the_money(direction: str, observed: str, verdict: TransferVerdict) -> None:
    """Exactly 'after' → committed; exactly 'before' → not; anything else → a human must look."""
    assert (
        judge_transfer(before=Decimal(100), amount=Decimal(50), direction=direction, observed=Decimal(observed))
        is verdict
    )


def test_sweep_uses_the_sweep_round_in_its_client_oid() -> None:
    events = [created(), approved(), offboarded()]
    snap = BalanceSnapshot(at_ms=1, sweep_round=2, wallets={"MAIN": {"BTC": (Decimal(1), Decimal(1))}})
    result = step(events, with_sub(balances=snap, sweep_round=2))
    assert isinstance(result, c.Transfer)
    assert result.purpose == TransferPurpose.SWEEP
    assert result.client_oid == NAMING.sweep_client_oid(REF, 2, 0)


def test_an_unchanged_balance_proves_nothing_while_the_customer_can_trade() -> None:
    """Review finding: after keys exist, a trade of the same amount could hide a committed transfer; "before"
    then means "ask a human", never "send again"."""
    assert (
        judge_transfer(before=Decimal(100), amount=Decimal(50), direction="OUT", observed=Decimal(100), quiescent=False)
        is TransferVerdict.AMBIGUOUS
    )
    assert (
        judge_transfer(before=Decimal(100), amount=Decimal(50), direction="OUT", observed=Decimal(150), quiescent=False)
        is TransferVerdict.COMMITTED
    )
