"""The planner, for every event type and every kind of recorded state."""

from __future__ import annotations

from decimal import Decimal

import pytest

from handlers import commands as c
from handlers.desired import fold
from handlers.planner import (
    AWAITING_LEDGER,
    DELIVERY_POLL_MS,
    MAX_ATTEMPTS,
    UPSTREAM_SKEW_MS,
    CapDecision,
    Policy,
    cap_decision,
    plan,
    repeat_overdue,
    retry_overdue,
    update_overdue,
)
from handlers.records import (
    BalanceSnapshot,
    Blocked,
    Intent,
    IntentKind,
    KycProgress,
    KycStage,
    TransferPurpose,
    TransferStatus,
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
    assert result == c.CreateSubAccount(account_name=NAMING.account_name("cust-1", 0), attempt=0)
    assert "cust" not in result.account_name


def test_next_name_attempt_after_a_taken_name() -> None:
    """name_attempt moves the name on; each attempt's name differs."""
    result = step([created()], record(name_attempt=3))
    assert result == c.CreateSubAccount(account_name=NAMING.account_name("cust-1", 3), attempt=3)
    assert result.account_name != NAMING.account_name("cust-1", 0)


def test_waits_for_kyc_once_the_sub_account_exists() -> None:
    assert step([created()], with_sub()) == c.Idle("waiting for customer.kyc_approved")


def test_funding_comes_before_the_key() -> None:
    """The first funding line is transferred before any key exists, under its line's first clientOid; the next
    line follows once the first is recorded. No balance is read: a balance is never evidence."""
    events = [created(), approved(funding=(("USDT", "250"), ("USDT", "50")))]
    result = step(events, with_sub())
    assert isinstance(result, c.Transfer)
    assert (result.key, result.amount, result.direction, result.attempt, result.evidence_first) == (
        "e-kyc#0",
        Decimal(250),
        "OUT",
        0,
        False,
    )
    assert result.client_oid == NAMING.funding_client_oid(REF, "e-kyc#0", 0)
    second = step(events, with_sub(transfers={"e-kyc#0": funded("e-kyc#0", amount="250")}))
    assert isinstance(second, c.Transfer)
    assert second.key == "e-kyc#1"


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
        approved(ips=("203.0.114.10", "10.0.0.1"), permissions=("spot", "general"), funding=(("USDT", "1"),)),
    ]
    result = step(events, with_sub(transfers={"e-kyc#0": funded("e-kyc#0")}))
    assert result == c.IssueApiKey(
        uid=UID,
        generation=0,
        label="prov-g0000",
        permissions=("general", "spot"),
        ip_whitelist=("10.0.0.1", "203.0.114.10"),
    )


def test_converged_customer_wakes_up_when_its_key_gets_old() -> None:
    result = step([created(), approved()], with_sub(keys=(key(0, created_at_ms=50),)), now=100)
    assert result == c.Idle("converged", 50 + POLICY.key_max_age_ms)


def test_newer_ip_change_updates_the_key() -> None:
    """An IP change that occurred after the approval replaces the whitelist of the live key."""
    events = [created(), approved(minute=1), ip_changed("e-ip", 5, "198.51.101.7")]
    result = step(events, with_sub(keys=(key(0),)))
    assert result == c.UpdateApiKey(
        uid=UID, api_key="key0", label="prov-g0000", permissions=("general", "spot"), ip_whitelist=("198.51.101.7",)
    )


def test_older_ip_change_loses_to_the_newer_approval() -> None:
    """Re-ordered delivery: an IP change that occurred before the approval does not win."""
    events = [created(), ip_changed("e-ip", 0, "198.51.101.7"), approved(minute=1)]
    assert isinstance(step(events, with_sub(keys=(key(0),))), c.Idle)


def test_rotation_issues_the_next_generation_then_revokes_the_old_after_grace() -> None:
    events = [created(), approved(minute=1), rotation("e-rot", 2)]
    assert step(events, with_sub(keys=(key(0),))) == c.IssueApiKey(
        uid=UID, generation=1, label="prov-g0001", permissions=("general", "spot"), ip_whitelist=("203.0.114.10",)
    )
    both = with_sub(keys=(key(0), key(1, created_at_ms=1000)))
    assert step(events, both, now=5000) == c.Idle("converged", 1000 + POLICY.rotation_grace_ms)
    assert step(events, both, now=11_000) == c.RevokeApiKey(
        uid=UID, api_key="key0", reason="rotated", successor="key1"
    )  # revoked once key1's credentials reached the upstream (webhooks on: the executor checks)


def test_rotation_request_from_before_the_first_approval_is_ignored() -> None:
    events = [created(), rotation("e-rot", 0), approved(minute=1)]
    assert isinstance(step(events, with_sub(keys=(key(0),))), c.Idle)


def test_old_key_is_rotated_by_age() -> None:
    result = step([created(), approved()], with_sub(keys=(key(0, created_at_ms=0),)), now=POLICY.key_max_age_ms)
    assert result == c.RotateForAge(generation=0)
    rotated = with_sub(keys=(key(0),), age_rotations=1)
    assert isinstance(step([created(), approved()], rotated), c.IssueApiKey)


def test_offboarding_revokes_every_key_then_reads_and_sweeps_then_closes() -> None:
    events = [created(), approved(), rotation("e-rot", 2), offboarded()]
    assert step(events, with_sub(keys=(key(0), key(1)))) == c.RevokeApiKey(uid=UID, api_key="key0", reason="offboarded")
    assert step(events, with_sub(keys=(key(0, revoked=True), key(1)))) == c.RevokeApiKey(
        uid=UID, api_key="key1", reason="offboarded"
    )
    no_keys = with_sub(keys=(key(0, revoked=True), key(1, revoked=True)))
    assert step(events, no_keys) == c.ReadBalances(uid=UID)
    snap = BalanceSnapshot(at_ms=1, sweep_round=0, wallets={"MAIN": {}, "TRADE": {"USDT": (Decimal(7), Decimal(5))}})
    sweep = step(events, no_keys.model_copy(update={"balances": snap}))
    assert isinstance(sweep, c.Transfer)
    assert (sweep.direction, sweep.amount, sweep.sub_wallet) == ("IN", Decimal(5), "TRADE")
    assert step(events, no_keys.model_copy(update={"balances": snap, "sweep_round": 1})) == c.ReadBalances(uid=UID)
    empty = BalanceSnapshot(at_ms=1, sweep_round=1, wallets={"MAIN": {}, "TRADE": {}})
    swept = no_keys.model_copy(update={"balances": empty, "sweep_round": 1})
    assert step(events, swept) == c.ListKeys(uid=UID), "a last listing: no key the exchange listed late lives on"
    closing = step(events, swept.model_copy(update={"keys_listed_at_ms": 1}))
    assert closing == c.CloseCustomer(reason="offboarded")


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
    """Unfunded lines and missing keys are not pursued once the customer is offboarded: each unfunded line is
    refused (the upstream hears a verdict for it), then the balances are read."""
    events = [created(), approved(funding=(("USDT", "5"),)), offboarded()]
    refused = step(events, with_sub())
    assert isinstance(refused, c.RefuseFunding)
    assert (refused.key, refused.reason) == ("e-kyc#0", "the customer was offboarded before this line was funded")
    done = with_sub(transfers={"e-kyc#0": funded("e-kyc#0", amount="5", status=TransferStatus.REFUSED)})
    assert step(events, done) == c.ReadBalances(uid=UID)


@pytest.mark.parametrize("rec", [record(), record(name_attempt=1)])
def test_offboarded_before_created_or_before_the_sub_account_closes_without_creating(rec) -> None:
    assert isinstance(step([offboarded()], rec), c.CloseCustomer)
    assert isinstance(step([created(), offboarded()], rec), c.CloseCustomer)


def test_closed_customer_does_nothing() -> None:
    assert step([created(), approved()], with_sub(closed_at_ms=5)) == c.Idle("closed")


@pytest.mark.parametrize(
    ("kind", "token", "details", "expected"),
    [
        (IntentKind.CREATE_SUB_ACCOUNT, "nd0x", {"attempt": 0}, c.ResolveSubAccount(account_name="nd0x", attempt=0)),
        (
            IntentKind.ISSUE_KEY,
            "prov-g0000",
            {"uid": UID, "generation": 0, "permissions": ["spot"], "ip_whitelist": []},
            c.ResolveApiKey(uid=UID, generation=0, label="prov-g0000"),
        ),
        (
            IntentKind.UPDATE_KEY,
            "key0",
            {"uid": UID, "label": "prov-g0000", "permissions": ["spot"], "ip_whitelist": ["10.0.0.1"]},
            c.UpdateApiKey(
                uid=UID, api_key="key0", label="prov-g0000", permissions=("spot",), ip_whitelist=("10.0.0.1",)
            ),
        ),
        (
            IntentKind.REVOKE_KEY,
            "key0",
            {"uid": UID, "reason": "rotated"},
            c.ResolveRevoke(uid=UID, api_key="key0", reason="rotated"),
        ),
        (
            IntentKind.TRANSFER,
            "f1",
            {
                "uid": UID,
                "key": "e#0",
                "purpose": "fund",
                "currency": "USDT",
                "amount": "5",
                "direction": "OUT",
                "sub_wallet": "TRADE",
                "broker_wallet": "MAIN",
                "day": "20261122",
            },
            c.ResolveTransfer(uid=UID, key="e#0"),
        ),
        (IntentKind.SUBMIT_KYC, "e-kyc", {"uid": UID, "event_id": "e-kyc"}, c.CheckKyc(uid=UID)),
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
    assert step([created()], record(pending=pending), now=1001) == c.ResolveSubAccount(account_name="nd0x", attempt=0)


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


def test_funding_after_a_key_exists_is_sent_like_any_other() -> None:
    """A top-up while the customer trades needs no balance read: it is settled on the exchange's record of it."""
    events = [created(), approved(funding=(("USDT", "5"),)), approved("e-kyc2", 3, funding=(("USDT", "7"),))]
    rec = with_sub(keys=(key(0),), transfers={"e-kyc#0": funded("e-kyc#0", amount="5")})
    result = step(events, rec)
    assert isinstance(result, c.Transfer)
    assert (result.key, result.amount) == ("e-kyc2#0", Decimal(7))


PROXY = Policy(naming=NAMING, funding_caps={"USDT": Decimal(1000)}, proxy_kyc=True, kyc_poll_ms=60_000)


def test_proxy_kyc_submits_then_waits_then_gates_keys_and_funding() -> None:
    events = [created(), approved(funding=(("USDT", "5"),))]
    docs = fold(events, documents_held={"e-kyc"})
    assert plan(docs, with_sub(), now_ms=0, policy=PROXY) == c.SubmitKyc(uid=UID, event_id="e-kyc")
    waiting = with_sub(kyc=KycProgress(event_id="e-kyc", stage=KycStage.PROCESS, next_check_ms=500))
    assert plan(docs, waiting, now_ms=100, policy=PROXY) == c.Idle("waiting for the KYC review", 500)
    assert plan(docs, waiting, now_ms=500, policy=PROXY) == c.CheckKyc(uid=UID)
    rejected = with_sub(kyc=KycProgress(event_id="e-kyc", stage=KycStage.REJECT, reason="blurry"))
    assert plan(docs, rejected, now_ms=0, policy=PROXY) == c.Idle("KYC rejected")
    passed = with_sub(kyc=KycProgress(event_id="e-kyc", stage=KycStage.PASS))
    assert isinstance(plan(docs, passed, now_ms=0, policy=PROXY), c.Transfer)


def test_a_kyc_review_holds_back_new_access_only() -> None:
    """A customer with keys sends documents (and a new whitelist, a rotation, a new permission): while the review
    runs or after a rejection no key is issued and no permission added, but the rotated-out key is revoked after
    its grace and the live keys take the newest whitelist."""
    events = [
        created(),
        approved(),
        rotation("e-rot", 3),
        ip_changed("e-ip", 6, "198.51.101.7"),
        approved("e-kyc2", 5, permissions=("general", "spot", "futures")),
    ]
    docs = fold(events, documents_held={"e-kyc2"})
    grace = PROXY.rotation_grace_ms
    keys = (key(0), key(1, created_at_ms=10))
    review = KycProgress(event_id="e-kyc2", stage=KycStage.PROCESS, next_check_ms=grace * 10)
    for progress in (review, KycProgress(event_id="e-kyc2", stage=KycStage.REJECT, reason="blurry")):
        rec = with_sub(keys=keys, kyc=progress)
        first = plan(docs, rec, now_ms=20, policy=PROXY)
        assert first == c.UpdateApiKey(
            uid=UID, api_key="key0", label=key(0).label, permissions=("general", "spot"), ip_whitelist=("198.51.101.7",)
        ), first
        aligned = tuple(k.model_copy(update={"ip_whitelist": ("198.51.101.7",)}) for k in keys)
        rec = rec.model_copy(update={"keys": aligned})
        waiting = plan(docs, rec, now_ms=20, policy=PROXY)
        assert isinstance(waiting, c.Idle) and waiting.wake_at_ms == 10 + grace, waiting
        assert isinstance(plan(docs, rec, now_ms=10 + grace, policy=PROXY), c.RevokeApiKey)


def test_without_documents_proxy_kyc_does_not_apply() -> None:
    """The upstream did its own KYC: approval without documents provisions directly."""
    events = [created(), approved()]
    assert isinstance(plan(fold(events), with_sub(), now_ms=0, policy=PROXY), c.IssueApiKey)


def test_a_new_approval_with_documents_resubmits_after_a_rejection() -> None:
    events = [created(), approved(), approved("e-kyc2", 5)]
    docs = fold(events, documents_held={"e-kyc", "e-kyc2"})
    rejected = with_sub(kyc=KycProgress(event_id="e-kyc", stage=KycStage.REJECT, reason="blurry"))
    assert plan(docs, rejected, now_ms=0, policy=PROXY) == c.SubmitKyc(uid=UID, event_id="e-kyc2")


@pytest.mark.parametrize(
    "kyc",
    [
        None,  # documents received, never submitted
        KycProgress(event_id="e-kyc", stage=KycStage.REJECT, reason="blurry"),  # a newer approval would resubmit
        KycProgress(event_id="e-kyc", stage=KycStage.PROCESS, next_check_ms=0),  # a review due for a look
    ],
)
def test_no_kyc_submission_is_planned_once_the_customer_is_offboarded(kyc: KycProgress | None) -> None:
    """Offboarding dominates proxy KYC: whatever the review's stage, the plan revokes, sweeps and closes, and never
    submits (so the documents still held may be deleted at the offboard: worker.provisioning.reconciler); a
    submission whose outcome is unknown is only resolved by reading the status, never sent again."""
    events = [created(), approved(), approved("e-kyc2", 5), offboarded()]
    docs = fold(events, documents_held={"e-kyc", "e-kyc2"})
    rec = with_sub(keys=(key(0),), kyc=kyc)
    assert plan(docs, rec, now_ms=100, policy=PROXY) == c.RevokeApiKey(uid=UID, api_key="key0", reason="offboarded")
    unkeyed = with_sub(kyc=kyc)
    assert isinstance(plan(docs, unkeyed, now_ms=100, policy=PROXY), c.ReadBalances)
    submitting = Intent(
        kind=IntentKind.SUBMIT_KYC, token="e-kyc2", started_at_ms=0, details={"uid": UID, "event_id": "e-kyc2"}
    )
    in_flight = with_sub(kyc=kyc, pending=submitting)
    assert plan(docs, in_flight, now_ms=PROXY.resolve_delay_ms, policy=PROXY) == c.CheckKyc(uid=UID)


def test_sweep_uses_the_sweep_round_in_its_client_oid() -> None:
    events = [created(), approved(), offboarded()]
    snap = BalanceSnapshot(at_ms=1, sweep_round=2, wallets={"MAIN": {"BTC": (Decimal(1), Decimal(1))}})
    result = step(events, with_sub(balances=snap, sweep_round=2))
    assert isinstance(result, c.Transfer)
    assert result.purpose == TransferPurpose.SWEEP
    assert result.client_oid == NAMING.sweep_client_oid(REF, 2, 0)


# --- money: caps count what may have moved (issue 10) ---------------------------------------------------------


def fund_intent(line: str, amount: str, *, currency: str = "USDT") -> Intent:
    details = {
        "key": line,
        "purpose": "fund",
        "uid": UID,
        "currency": currency,
        "amount": amount,
        "direction": "OUT",
        "sub_wallet": "TRADE",
        "broker_wallet": "MAIN",
        "day": "20261122",
        "first_sent_ms": 50,
    }
    return Intent(kind=IntentKind.TRANSFER, token=f"oid-{line}", started_at_ms=50, details=details)


@pytest.mark.parametrize(
    ("moved", "in_doubt", "amount", "expected"),
    [
        ("0", "0", "600", CapDecision.SEND),
        ("0", "600", "600", CapDecision.WAIT),
        ("600", "0", "600", CapDecision.REFUSE),
        ("400", "600", "600", CapDecision.WAIT),
        ("401", "600", "600", CapDecision.REFUSE),
        ("0", "400", "600", CapDecision.SEND),
        ("1000", "0", "0.00000001", CapDecision.REFUSE),
    ],
)
def test_the_cap_counts_every_line_that_may_have_moved_money(moved, in_doubt, amount, expected) -> None:
    """Refuse what can never fit, wait while doubtful lines could take the room, send what fits either way."""
    decision = cap_decision(amount=Decimal(amount), moved=Decimal(moved), in_doubt=Decimal(in_doubt), cap=Decimal(1000))
    assert decision is expected


def test_no_configured_cap_refuses() -> None:
    assert cap_decision(amount=Decimal(1), moved=Decimal(0), in_doubt=Decimal(0), cap=None) is CapDecision.REFUSE


def test_a_line_in_doubt_holds_later_lines_of_its_currency_not_the_key_or_other_currencies() -> None:
    """Line 1 is blocked for an operator's verdict: line 2 (USDT) waits rather than risk the cap, a BTC line goes
    ahead, and the key is issued meanwhile."""
    events = [created(), approved(funding=(("USDT", "600"), ("USDT", "600"), ("BTC", "0.5")))]
    doubt = Blocked(reason="outcome unknown", at_ms=60, manual=True, intent=fund_intent("e-kyc#0", "600"))
    rec = with_sub(blocked={"fund:e-kyc#0": doubt})
    result = step(events, rec)
    assert isinstance(result, c.Transfer)
    assert (result.key, result.currency) == ("e-kyc#2", "BTC")
    rec = rec.model_copy(update={"transfers": {"e-kyc#2": funded("e-kyc#2", "BTC", "0.5")}})
    assert isinstance(step(events, rec), c.IssueApiKey)
    rec = rec.model_copy(update={"keys": (key(0),)})
    idle = step(events, rec)
    assert isinstance(idle, c.Idle)
    assert "e-kyc#1 waits for a verdict on e-kyc#0" in idle.reason


def test_an_accepted_transfer_is_in_doubt_until_confirmed_after_the_key() -> None:
    """An orderId may still end FAILED: the next line waits (not refused) until the exchange says SUCCESS, which
    is read once the customer has its key."""
    events = [created(), approved(funding=(("USDT", "600"), ("USDT", "600")))]
    accepted = funded("e-kyc#0", amount="600", status=TransferStatus.ACCEPTED).model_copy(
        update={"order_id": "o-1", "check_at_ms": 0}
    )
    rec = with_sub(transfers={"e-kyc#0": accepted})
    assert isinstance(step(events, rec), c.IssueApiKey)
    keyed = rec.model_copy(update={"keys": (key(0),)})
    assert step(events, keyed) == c.ConfirmTransfer(key="e-kyc#0", order_id="o-1")
    later = accepted.model_copy(update={"check_at_ms": 5_000})
    waiting = step(events, keyed.model_copy(update={"transfers": {"e-kyc#0": later}}))
    assert isinstance(waiting, c.Idle) and waiting.wake_at_ms == 5_000
    assert "e-kyc#1 waits for a verdict on e-kyc#0" in waiting.reason
    committed = accepted.model_copy(update={"status": TransferStatus.COMMITTED})
    refused = step(events, keyed.model_copy(update={"transfers": {"e-kyc#0": committed}}))
    assert isinstance(refused, c.RefuseFunding) and refused.key == "e-kyc#1"


def test_a_line_that_may_repeat_a_lost_send_is_not_refused_by_the_per_customer_cap_here() -> None:
    """The ledger said an earlier send of line 1 moved nothing (``earlier_sends``), and line 0 took the room since:
    the cap's refusal says nothing of that earlier send, so the planner hands the line to the transfer step with
    the refusal (which blocks it for an operator) instead of telling the upstream it was refused."""
    events = [created(), approved(funding=(("USDT", "600"), ("USDT", "600")))]
    committed = funded("e-kyc#0", amount="600")
    rec = with_sub(transfers={"e-kyc#0": committed}, keys=(key(0),))
    assert isinstance(step(events, rec), c.RefuseFunding)
    doubtful = step(events, rec.model_copy(update={"earlier_sends": {"e-kyc#1": 1_000}}))
    assert isinstance(doubtful, c.Transfer), doubtful
    assert doubtful.key == "e-kyc#1" and doubtful.earlier_send_ms == 1_000
    assert doubtful.refusal is not None and "per-customer cap" in doubtful.refusal


def test_lines_that_may_repeat_lost_sends_are_decided_one_after_the_other_not_held_by_each_other() -> None:
    """Both lines of an approval wait for a re-send (an operator said neither moved, after a loss), together past
    the cap: the first is sent (it does not count the second in doubt, nor the second the first), the second is
    then decided against it — never both held waiting for each other (a chaos run found customers stuck so)."""
    events = [created(), approved(funding=(("USDT", "600"), ("USDT", "600")))]
    rec = with_sub(keys=(key(0),)).model_copy(update={"earlier_sends": {"e-kyc#0": 1_000, "e-kyc#1": 1_000}})
    first = step(events, rec)
    assert isinstance(first, c.Transfer) and first.key == "e-kyc#0" and first.refusal is None, first
    paid = rec.model_copy(update={"transfers": {"e-kyc#0": funded("e-kyc#0", amount="600")}})
    second = step(events, paid)
    assert isinstance(second, c.Transfer) and second.key == "e-kyc#1", second
    assert second.refusal is not None and "per-customer cap" in second.refusal


def test_a_line_that_may_repeat_a_lost_send_goes_before_a_line_that_would_take_its_room() -> None:
    """Line 1's earlier send may have paid; line 0, new, would take the room that send may have used (600 + 600
    past the cap of 1000): line 1 is decided first — sent again, not turned away for line 0."""
    events = [created(), approved(funding=(("USDT", "600"), ("USDT", "600")))]
    rec = with_sub(keys=(key(0),)).model_copy(update={"earlier_sends": {"e-kyc#1": 1_000}})
    first = step(events, rec)
    assert isinstance(first, c.Transfer) and first.key == "e-kyc#1" and first.refusal is None, first


def test_a_recovered_record_sends_unrecorded_lines_evidence_first_once_earlier_sends_have_settled() -> None:
    """After a loss every unrecorded line is looked for first (all of them, before any is decided against the
    cap), then sent evidence-first."""
    events = [created(), approved(funding=(("USDT", "5"), ("USDT", "7")))]
    recovered = max(line.occurred_ms for line in fold(events).funding) + 1
    rec = with_sub(recovered_at_ms=recovered, keys=(key(0, created_at_ms=recovered),))
    idle = step(events, rec, now=recovered)
    assert isinstance(idle, c.Idle) and idle.wake_at_ms == recovered + POLICY.resolve_delay_ms
    settled = recovered + POLICY.resolve_delay_ms
    first = step(events, rec, now=settled)
    assert isinstance(first, c.LookForTransfer) and first.key == "e-kyc#0" and len(first.client_oids) == MAX_ATTEMPTS
    second = step(events, rec.model_copy(update={"looked_for": ("e-kyc#0",)}), now=settled)
    assert isinstance(second, c.LookForTransfer) and second.key == "e-kyc#1"
    looked = rec.model_copy(update={"looked_for": ("e-kyc#0", "e-kyc#1")})
    waits = step(events, looked, now=settled)  # the cap cannot count lines not re-published yet
    assert isinstance(waits, c.Idle) and "e-kyc#0 waits until the upstream's re-publication" in waits.reason
    result = plan(fold(events), looked, now_ms=settled, policy=POLICY, republished_at_ms=settled)
    assert isinstance(result, c.Transfer) and result.key == "e-kyc#0" and result.evidence_first


def test_after_a_loss_no_line_is_sent_until_the_caps_count_what_the_ledger_lists_a_new_customers_neither() -> None:
    """A transfer in flight at the loss is listed by the ledger only after its lag: until the day's caps were seeded
    again from a ledger read made once it is, a line is not sent — a customer new since the loss (never
    recovered) waits too, due at that moment; then the caps are seeded first (``SeedDailyCaps``), then it is sent.
    The per-customer cap refuses meanwhile (it does not count on the Special Account's day)."""
    events = [created(), approved(funding=(("USDT", "5"), ("USDT", "7")))]
    due = 50_000
    rec = with_sub(keys=(key(0),))
    waits = plan(fold(events), rec, now_ms=due - 1, policy=POLICY, caps_due_at_ms=due)
    assert waits == c.Idle(AWAITING_LEDGER, due)
    assert plan(fold(events), rec, now_ms=due, policy=POLICY, caps_due_at_ms=due) == c.SeedDailyCaps(due_at_ms=due)
    sent = plan(fold(events), rec, now_ms=due, policy=POLICY, caps_due_at_ms=None)
    assert isinstance(sent, c.Transfer) and sent.key == "e-kyc#0"
    over = [created(), approved(funding=(("USDT", "1001"),))]
    refused = plan(fold(over), rec, now_ms=due - 1, policy=POLICY, caps_due_at_ms=due)
    assert isinstance(refused, c.RefuseFunding) and "per-customer cap" in refused.reason


def test_the_wait_for_the_ledger_holds_no_key_and_no_sweep() -> None:
    """Waiting for the ledger holds only what would count on the daily cap: the key is issued meanwhile, and an
    offboarded customer's balances are moved back (into the Special Account: no cap counts them)."""
    events = [created(), approved(funding=(("USDT", "5"),))]
    issued = plan(fold(events), with_sub(), now_ms=1, policy=POLICY, caps_due_at_ms=50_000)
    assert isinstance(issued, c.IssueApiKey)
    gone = [created(), approved(), offboarded()]
    snap = BalanceSnapshot(at_ms=1, sweep_round=0, wallets={"MAIN": {}, "TRADE": {"USDT": (Decimal(7), Decimal(5))}})
    swept = with_sub(keys=(key(0, revoked=True),), balances=snap)
    sweep = plan(fold(gone), swept, now_ms=1, policy=POLICY, caps_due_at_ms=50_000)
    assert isinstance(sweep, c.Transfer) and sweep.purpose is TransferPurpose.SWEEP


def test_after_a_loss_a_pending_funding_transfer_is_settled_only_once_the_caps_count_what_the_ledger_lists() -> None:
    """Settling a pending funding transfer may re-send it on today's cap: after a loss it waits for the ledger
    like a line sent anew, then the caps are seeded first. A pending sweep (no cap counts it) is settled as usual."""
    events = [created(), approved(funding=(("USDT", "5"),))]
    pending = with_sub(keys=(key(0),), pending=fund_intent("e-kyc#0", "5"))
    due = POLICY.resolve_delay_ms + 10_000
    assert plan(fold(events), pending, now_ms=due - 1, policy=POLICY, caps_due_at_ms=due) == c.Idle(
        AWAITING_LEDGER, due
    )
    assert plan(fold(events), pending, now_ms=due, policy=POLICY, caps_due_at_ms=due) == c.SeedDailyCaps(due_at_ms=due)
    assert plan(fold(events), pending, now_ms=due, policy=POLICY) == c.ResolveTransfer(uid=UID, key="e-kyc#0")
    sweep = Intent(
        kind=IntentKind.TRANSFER,
        token="oid-sweep",
        started_at_ms=50,
        details={**fund_intent("sweep:0", "5").details.model_dump(mode="json"), "purpose": "sweep", "direction": "IN"},
    )
    swept = pending.model_copy(update={"pending": sweep})
    assert plan(fold(events), swept, now_ms=due - 1, policy=POLICY, caps_due_at_ms=due) == c.ResolveTransfer(
        uid=UID, key="sweep:0"
    )


def test_until_the_republication_is_declared_every_line_is_looked_for_then_new_lines_are_just_sent() -> None:
    """After a loss a line's ``occurred_at`` cannot say it is new (a re-publication may re-stamp it; a paid line
    not re-published yet is unknown to the cap): every unrecorded line is looked for — from the sub-account's
    creation when it claims to be newer than the loss — until the on-call declares the re-publication complete.
    A line that occurred after the declaration is sent without a search."""
    events = [created(), approved(funding=(("USDT", "5"),))]
    recovered = fold(events).funding[0].occurred_ms - UPSTREAM_SKEW_MS - 1
    settled = recovered + POLICY.resolve_delay_ms
    rec = with_sub(recovered_at_ms=recovered, keys=(key(0, created_at_ms=settled),))
    waits = step(events, rec, now=settled)  # stamped after the loss: new, or an old line re-stamped
    assert isinstance(waits, c.Idle) and "e-kyc#0 waits until the upstream's re-publication" in waits.reason
    declared = plan(fold(events), rec, now_ms=settled, policy=POLICY, republished_at_ms=recovered + 1)
    assert isinstance(declared, c.Transfer) and not declared.evidence_first and declared.since_ms is None
    late = fold(events).funding[0].occurred_ms + UPSTREAM_SKEW_MS
    still = plan(fold(events), rec, now_ms=settled, policy=POLICY, republished_at_ms=late)
    assert isinstance(still, c.LookForTransfer) and still.ask_if_unfound and still.may_eliminate
    assert still.since_ms == rec.sub_account.created_at_ms - UPSTREAM_SKEW_MS  # its stamp is newer than the loss
    kept = plan(fold(events), rec, now_ms=settled, policy=POLICY, republished_at_ms=late, stamps_kept=True)
    assert isinstance(kept, c.Transfer) and not kept.evidence_first  # the stamps were kept: asked for after the loss


def test_before_the_declaration_a_transfer_is_never_tied_to_a_line_by_elimination() -> None:
    """A line stamped before the loss is looked for at once, but a transfer the ledger does not name it in is not
    judged its own until the re-publication is complete (``may_eliminate``); a line whose search found only such
    transfers waits. Nothing is sent before the declaration, either: a line paid before the loss whose outcome no
    one heard and that is not re-published yet is unknown to the cap."""
    events = [created(), approved(funding=(("USDT", "5"), ("BTC", "0.5")))]
    recovered = max(line.occurred_ms for line in fold(events).funding) + UPSTREAM_SKEW_MS + 1
    settled = recovered + POLICY.resolve_delay_ms
    rec = with_sub(recovered_at_ms=recovered, keys=(key(0, created_at_ms=recovered),), outcomes_heard=True)
    look = step(events, rec, now=settled)
    assert isinstance(look, c.LookForTransfer) and look.key == "e-kyc#0" and not look.may_eliminate
    waiting = rec.model_copy(update={"awaiting_republication": ("e-kyc#0",), "looked_for": ("e-kyc#1",)})
    held = step(events, waiting, now=settled)
    assert isinstance(held, c.Idle) and "e-kyc#0 waits until" in held.reason and "e-kyc#1 waits until" in held.reason
    declared = plan(fold(events), waiting, now_ms=settled, policy=POLICY, republished_at_ms=settled)
    assert isinstance(declared, c.LookForTransfer) and declared.key == "e-kyc#0" and declared.may_eliminate
    looked = waiting.model_copy(update={"looked_for": ("e-kyc#0", "e-kyc#1")})
    sent = plan(fold(events), looked, now_ms=settled, policy=POLICY, republished_at_ms=settled)
    assert isinstance(sent, c.Transfer) and sent.key == "e-kyc#0"


def test_a_line_known_new_is_no_twin_of_a_re_published_one() -> None:
    """Once the re-publication is declared with the events' own times kept, a line asked for after the loss was
    never sent before it: an old line of the same amount is judged without it as a rival (``twins``)."""
    events = [created(), approved(funding=(("USDT", "5"),)), approved("e-kyc2", 40, funding=(("USDT", "5"),))]
    old, new = fold(events).funding
    recovered = old.occurred_ms + 1
    assert new.occurred_ms >= recovered + UPSTREAM_SKEW_MS
    settled = declared = new.occurred_ms + UPSTREAM_SKEW_MS  # declared after the new line was asked for
    rec = with_sub(recovered_at_ms=recovered, keys=(key(0, created_at_ms=recovered),))
    blind = plan(fold(events), rec, now_ms=settled, policy=POLICY, republished_at_ms=declared)
    assert isinstance(blind, c.LookForTransfer) and blind.key == old.key and blind.twins == 1
    kept = plan(fold(events), rec, now_ms=settled, policy=POLICY, republished_at_ms=declared, stamps_kept=True)
    assert isinstance(kept, c.LookForTransfer) and kept.key == old.key and kept.twins == 0


def test_a_line_new_only_on_the_kept_stamps_is_looked_for_before_offboarding_refuses_it() -> None:
    """``--stamps-kept`` makes a line stamped after the loss new; should the upstream have re-stamped an old, paid
    line after all, refusing it at offboarding would tell a paid line refused. It is looked for first (never
    sent); a line asked for after the declaration is refused at once."""
    events = [created(), approved(funding=(("USDT", "5"),)), offboarded()]
    line = fold(events).funding[0]
    recovered = line.occurred_ms - UPSTREAM_SKEW_MS - 1  # the line is stamped after the loss
    declared = line.occurred_ms + 1
    settled = declared + POLICY.resolve_delay_ms
    rec = with_sub(recovered_at_ms=recovered)
    look = plan(fold(events), rec, now_ms=settled, policy=POLICY, republished_at_ms=declared, stamps_kept=True)
    assert isinstance(look, c.LookForTransfer) and look.key == line.key and not look.ask_if_unfound
    looked = rec.model_copy(update={"looked_for": (line.key,)})
    refused = plan(fold(events), looked, now_ms=settled, policy=POLICY, republished_at_ms=declared, stamps_kept=True)
    assert isinstance(refused, c.RefuseFunding) and refused.key == line.key
    new = plan(fold(events), rec, now_ms=settled, policy=POLICY, republished_at_ms=recovered + 1, stamps_kept=True)
    assert isinstance(new, c.RefuseFunding) and new.key == line.key  # asked for after the declaration


@pytest.mark.parametrize(
    ("amount", "heard", "asks"), [("600", False, True), ("500", False, False), ("600", True, False)]
)
def test_elimination_asks_an_operator_where_the_cap_would_have_refused_the_line_for_the_transfer(
    amount: str, heard: bool, asks: bool
) -> None:
    """After a loss, a transfer no known line explains is a line's by elimination only on the declaration's word;
    had it been a line not re-published yet, a line whose amount would then not fit the per-customer cap (1000
    USDT here) may have been refused for it before the loss. Without the outcomes the upstream heard, such a line
    is held for an operator rather than told completed (``ask_if_eliminated``)."""
    events = [created(), approved(funding=(("USDT", amount),))]
    line = fold(events).funding[0]
    recovered = line.occurred_ms + 1
    settled = recovered + POLICY.resolve_delay_ms
    rec = with_sub(recovered_at_ms=recovered, keys=(key(0, created_at_ms=recovered),), outcomes_heard=heard)
    look = plan(fold(events), rec, now_ms=settled, policy=POLICY, republished_at_ms=settled)
    assert isinstance(look, c.LookForTransfer) and look.may_eliminate and look.ask_if_eliminated is asks
    assert look.day_caps_until_ms == (None if heard else recovered)  # the daily cap's check: the shell reads the days
    # the per-customer cap's room for every unexplained transfer (several stragglers): the shell reads the ledger
    assert look.customer_cap_room == (None if heard else Decimal(1000))


def test_lines_from_before_an_adoption_were_the_previous_systems() -> None:
    """A sub-account adopted from an older system: funding asked for before the adoption is not paid again."""
    events = [created(), approved(funding=(("USDT", "5"),)), approved("e-kyc2", 40, funding=(("USDT", "7"),))]
    adopted_at = fold(events).funding[1].occurred_ms - 1
    result = step(events, with_sub(adopted_at_ms=adopted_at))
    assert isinstance(result, c.RefuseFunding) and result.key == "e-kyc#0"
    assert "adopted" in result.reason
    rec = with_sub(
        adopted_at_ms=adopted_at,
        transfers={"e-kyc#0": funded("e-kyc#0", amount="5", status=TransferStatus.REFUSED)},
    )
    sent = step(events, rec)
    assert isinstance(sent, c.Transfer) and sent.key == "e-kyc2#0"


# --- keys: a blocked step blocks only what depends on it ------------------------------------------------------


def test_a_blocked_issuance_does_not_hold_back_revoking_rotated_out_keys() -> None:
    """Generation 2 cannot be issued: generation 0 (succeeded by 1) is still revoked after its grace; generation
    1, the customer's only way in, stays."""
    events = [created(), approved(), rotation("e-r1", 2), rotation("e-r2", 3)]
    rec = with_sub(
        keys=(key(0, created_at_ms=0), key(1, created_at_ms=100)),
        blocked={"key:2": Blocked(reason="refused", at_ms=200)},
    )
    assert step(events, rec, now=100 + POLICY.rotation_grace_ms) == c.RevokeApiKey(
        uid=UID, api_key="key0", reason="rotated", successor="key1"
    )
    rec = rec.model_copy(update={"keys": (key(0, revoked=True), key(1, created_at_ms=100))})
    assert isinstance(step(events, rec, now=100 + POLICY.rotation_grace_ms), c.Idle)


def test_a_blocked_issuance_does_not_hold_back_aligning_the_live_key() -> None:
    events = [created(), approved(), rotation("e-r1", 2), ip_changed("e-ip", 3, "198.51.101.9")]
    rec = with_sub(keys=(key(0),), blocked={"key:1": Blocked(reason="refused", at_ms=200)})
    result = step(events, rec)
    assert isinstance(result, c.UpdateApiKey) and result.ip_whitelist == ("198.51.101.9",)


def test_the_key_cap_is_made_room_for_by_revoking_the_oldest_rotated_out_key() -> None:
    """Five live keys (the exchange's cap) and a sixth generation asked for: the oldest rotated-out key goes first."""
    events = [created(), approved()] + [rotation(f"e-r{i}", 2 + i) for i in range(1, 6)]
    rec = with_sub(keys=tuple(key(g, created_at_ms=g) for g in range(5)))
    assert step(events, rec) == c.RevokeApiKey(
        uid=UID, api_key="key0", reason="rotated (the live-key cap left no room)", successor="key1"
    )
    rec = rec.model_copy(update={"keys": (key(0, revoked=True), *(key(g, created_at_ms=g) for g in range(1, 5)))})
    assert isinstance(step(events, rec), c.IssueApiKey)


def test_the_key_cap_never_makes_room_by_revoking_the_newest_key() -> None:
    """Five live keys at the cap, a sixth generation asked for, and the revocations of every rotated-out key
    blocked (gen 0–3): the newest live key (gen 4) has no newer key to take over from it — it is the one the
    upstream uses. It is not revoked to make room; the issuance is tried (the exchange refuses it at its cap, and
    that block is told) and the customer keeps its way in."""
    events = [created(), approved()] + [rotation(f"e-r{i}", 2 + i) for i in range(1, 6)]
    blocked = {f"revoke:key{g}": Blocked(reason="refused", at_ms=10) for g in range(4)}
    rec = with_sub(keys=tuple(key(g, created_at_ms=g) for g in range(5)), blocked=blocked)
    result = step(events, rec)
    assert not (isinstance(result, c.RevokeApiKey) and result.api_key == "key4"), result
    assert isinstance(result, c.IssueApiKey), result


def test_a_rotated_out_key_stays_live_while_its_successor_has_not_reached_the_upstream() -> None:
    """Webhooks tell us when the upstream received a key's credentials: while key1's ``api_key.issued`` is
    undelivered, key0 is not revoked after the grace, nor to make room under the key cap (nothing is issued beyond
    it then); once delivered, its grace runs from the delivery; the customer is looked at again meanwhile."""
    events = [created(), approved(), rotation("e-r1", 2)]
    both = with_sub(keys=(key(0, created_at_ms=0), key(1, created_at_ms=100)))
    later = 100 + POLICY.rotation_grace_ms
    waiting = plan(fold(events), both, now_ms=later, policy=POLICY, deliveries={"key1": None})
    assert isinstance(waiting, c.Idle) and waiting.wake_at_ms == later + DELIVERY_POLL_MS, waiting
    assert "key1" in waiting.reason
    delivered_late = plan(fold(events), both, now_ms=later, policy=POLICY, deliveries={"key1": later - 10})
    assert isinstance(delivered_late, c.Idle) and delivered_late.wake_at_ms == later - 10 + POLICY.rotation_grace_ms
    done = plan(fold(events), both, now_ms=later + POLICY.rotation_grace_ms, policy=POLICY, deliveries={"key1": later})
    assert isinstance(done, c.RevokeApiKey) and done.api_key == "key0", done
    full = [created(), approved()] + [rotation(f"e-r{i}", 2 + i) for i in range(1, 6)]
    capped = with_sub(keys=tuple(key(g, created_at_ms=g) for g in range(5)))
    held = plan(fold(full), capped, now_ms=10, policy=POLICY, deliveries={"key1": None})
    assert not isinstance(held, c.RevokeApiKey | c.IssueApiKey), held


def test_a_key_whose_secret_was_lost_is_replaced_and_maintained_until_revoked() -> None:
    """After a recovery a key without its secret is superseded: a new one is issued; until the old one is revoked
    after the new one's grace it is kept to the wanted whitelist (the upstream may still use it: adv22)."""
    lost = key(3).model_copy(update={"sealed": None, "ip_whitelist": ("203.**.10",)})
    events = [created(), approved()]
    rec = with_sub(keys=(lost,), age_rotations=4)
    issued = step(events, rec)
    assert isinstance(issued, c.IssueApiKey) and issued.generation == 4
    rec = rec.model_copy(update={"keys": (lost, key(4, created_at_ms=100))})
    update = step(events, rec)
    assert isinstance(update, c.UpdateApiKey) and update.api_key == "key3"
    maintained = lost.model_copy(update={"ip_whitelist": update.ip_whitelist, "permissions": update.permissions})
    rec = rec.model_copy(update={"keys": (maintained, key(4, created_at_ms=100))})
    assert isinstance(step(events, rec), c.Idle)
    assert step(events, rec, now=100 + POLICY.rotation_grace_ms) == c.RevokeApiKey(
        uid=UID, api_key="key3", reason="rotated", successor="key4"
    )


def test_a_rotated_out_key_waits_for_a_successor_whose_secret_we_hold() -> None:
    """A newer key whose secret was lost takes over from nothing (we cannot tell whether it reached the
    upstream): the older key waits for the newest one we can deliver, and for its delivery (adv22)."""
    held_old = key(0)
    lost = key(1, created_at_ms=10).model_copy(update={"sealed": None})
    fresh = key(2, created_at_ms=5_000_000)
    events = [created(), approved()]
    rec = with_sub(keys=(held_old, lost), age_rotations=2)
    late = 10 + 3 * POLICY.rotation_grace_ms
    assert isinstance(step(events, rec, now=late), c.IssueApiKey), "nothing revoked before the replacement exists"
    rec = rec.model_copy(update={"keys": (held_old, lost, fresh)})
    now = fresh.created_at_ms + POLICY.rotation_grace_ms
    undelivered = plan(fold(events), rec, now_ms=now, policy=POLICY, deliveries={"key2": None})
    assert isinstance(undelivered, c.Idle), undelivered
    delivered = plan(fold(events), rec, now_ms=now, policy=POLICY, deliveries={"key2": now - 1})
    assert isinstance(delivered, c.Idle), "a grace from the delivery"
    revoke = plan(fold(events), rec, now_ms=now + POLICY.rotation_grace_ms, policy=POLICY, deliveries={"key2": now - 1})
    assert revoke == c.RevokeApiKey(uid=UID, api_key="key0", reason="rotated", successor="key2")


# --- offboarding waits only for money --------------------------------------------------------------------------


def test_offboarding_sweeps_although_a_revocation_is_blocked_and_closes_only_when_it_is_done() -> None:
    events = [created(), approved(), offboarded()]
    rec = with_sub(keys=(key(0),), blocked={"revoke:key0": Blocked(reason="refused", at_ms=1)})
    assert step(events, rec) == c.ReadBalances(uid=UID)
    empty = BalanceSnapshot(at_ms=5, sweep_round=0, wallets={"MAIN": {}, "TRADE": {}})
    idle = step(events, rec.model_copy(update={"balances": empty}))
    assert idle == c.Idle("offboarding: key revocation is blocked")


def test_offboarding_closes_only_after_balances_read_after_the_last_revocation() -> None:
    events = [created(), approved(), offboarded()]
    revoked_late = key(0, revoked=True).model_copy(update={"revoked_at_ms": 50})
    stale = BalanceSnapshot(at_ms=10, sweep_round=0, wallets={"MAIN": {}, "TRADE": {}})
    rec = with_sub(keys=(revoked_late,), balances=stale)
    assert step(events, rec) == c.ReadBalances(uid=UID)
    fresh = stale.model_copy(update={"at_ms": 60})
    listed = rec.model_copy(update={"balances": fresh, "keys_listed_at_ms": 60})
    assert step(events, listed) == c.CloseCustomer(reason="offboarded")


def test_offboarding_waits_for_an_operators_verdict_on_money_in_doubt() -> None:
    events = [created(), approved(funding=(("USDT", "600"),)), offboarded()]
    doubt = Blocked(reason="outcome unknown", at_ms=60, manual=True, intent=fund_intent("e-kyc#0", "600"))
    empty = BalanceSnapshot(at_ms=5, sweep_round=0, wallets={"MAIN": {}, "TRADE": {}})
    idle = step(events, with_sub(blocked={"fund:e-kyc#0": doubt}, balances=empty))
    assert isinstance(idle, c.Idle) and "verdict on e-kyc#0" in idle.reason


def test_an_offboarded_customer_whose_sub_account_exists_is_offboarded_without_its_created_event() -> None:
    """After a state loss the offboarding may be re-delivered before customer.created: the audited sub-account is
    offboarded (keys revoked, money back), never closed as "offboarded before it was created"."""
    assert step([offboarded()], with_sub(keys=(key(0),))) == c.RevokeApiKey(
        uid=UID, api_key="key0", reason="offboarded"
    )


# --- a recovered state epoch ------------------------------------------------------------------------------------


def test_a_record_not_audited_in_a_recovered_epoch_is_audited_first() -> None:
    events = [created(), approved(), rotation("e-r", 2)]
    pending = with_sub(pending=fund_intent("e-kyc#0", "5"))
    audit = plan(fold(events), pending, now_ms=100, policy=POLICY, audit_epoch="ep2")
    assert isinstance(audit, c.AuditFromExchange) and audit.requested_rotations == 1
    audited = pending.model_copy(update={"audited_epoch": "ep2"})
    assert isinstance(plan(fold(events), audited, now_ms=10**9, policy=POLICY, audit_epoch="ep2"), c.ResolveTransfer)
    assert isinstance(plan(fold(events), pending, now_ms=10**9, policy=POLICY), c.ResolveTransfer)


def test_offboarding_refuses_a_line_the_exchange_had_refused_so_the_upstream_hears_a_verdict() -> None:
    events = [created(), approved(funding=(("USDT", "5"),)), offboarded()]
    rec = with_sub(blocked={"fund:e-kyc#0": Blocked(reason="insufficient", at_ms=1)})
    result = step(events, rec)
    assert isinstance(result, c.RefuseFunding) and result.key == "e-kyc#0"


def test_closing_waits_for_the_listing_to_catch_up_after_the_last_revocation() -> None:
    """A key whose creation answer was lost may be listed late: the last listing is taken only once the listing
    lag has passed since the last revocation."""
    lagging = Policy(naming=NAMING, funding_caps={"USDT": Decimal(1000)}, listing_lag_ms=30_000)
    events = [created(), approved(), offboarded()]
    revoked = key(0, revoked=True).model_copy(update={"revoked_at_ms": 1_000})
    empty = BalanceSnapshot(at_ms=2_000, sweep_round=0, wallets={"MAIN": {}, "TRADE": {}})
    rec = with_sub(keys=(revoked,), balances=empty)
    waiting = step(events, rec, now=5_000, policy=lagging)
    assert isinstance(waiting, c.Idle) and waiting.wake_at_ms == 31_000
    assert step(events, rec, now=31_000, policy=lagging) == c.ListKeys(uid=UID)


def test_the_per_customer_cap_counts_each_time_a_line_was_found_paid() -> None:
    """A line the recheck found paid twice (``extra_paid``) takes twice its amount of the customer's cap: a top-up
    that fits beside one payment but not beside two is refused (adv21)."""
    once = funded("e-kyc#0", amount="400")
    twice = once.model_copy(update={"extra_paid": 1})
    assert with_sub(transfers={"e-kyc#0": twice}).funded("USDT") == Decimal(800)
    events = [created(), approved(funding=(("USDT", "400"), ("USDT", "500")))]
    sent = step(events, with_sub(keys=(key(0),), transfers={"e-kyc#0": once}))
    assert isinstance(sent, c.Transfer) and sent.key == "e-kyc#1"
    refused = step(events, with_sub(keys=(key(0),), transfers={"e-kyc#0": twice}))
    assert isinstance(refused, c.RefuseFunding) and "per-customer cap" in refused.reason


def test_a_key_update_unknown_since_its_first_send_past_the_bound_is_overdue() -> None:
    """``update_overdue`` counts from the update's first send (``first_at_ms``), not its latest: at the bound the
    step to block and a reason naming the write and how long; before it, or for another kind of intent, nothing."""
    from handlers.intents import RevokeKeyDetails, UpdateKeyDetails

    policy = Policy(naming=NAMING, funding_caps={}, unknown_outcome_max_ms=3_600_000)
    details = UpdateKeyDetails(uid=UID, label="prov-g0000", permissions=["general"], ip_whitelist=["10.0.0.1"])
    update = Intent(kind=IntentKind.UPDATE_KEY, token="k1", started_at_ms=3_000_000, first_at_ms=0, details=details)
    assert update_overdue(update, 3_599_999, policy) is None
    assert not repeat_overdue(update.model_copy(update={"first_at_ms": 3_000_000}), 3_600_000, policy)
    overdue = update_overdue(update, 3_600_000 + 5 * 60_000, policy)
    assert overdue is not None
    step, reason = overdue
    assert step == "update:k1"
    assert "Modify SubAccount API" in reason and "every send for 1 h 5 min" in reason, reason
    revoke = Intent(
        kind=IntentKind.REVOKE_KEY, token="k1", started_at_ms=0, details=RevokeKeyDetails(uid=UID, reason="x")
    )
    assert repeat_overdue(revoke, 3_600_000, policy) and update_overdue(revoke, 3_600_000, policy) is None


def test_a_write_found_not_done_on_every_attempt_past_the_bound_is_overdue_with_its_step() -> None:
    """``retry_overdue`` counts from the write's first attempt (``first_at_ms``): at the bound, the step of each
    kind of write settled by reading, and a reason naming the write and how long; before it, or for a key update
    (bounded otherwise), nothing. An issuance with orphan deletes unanswered names the deletes; a sweep, its rounds."""
    from handlers.intents import (
        CreateSubAccountDetails,
        IssueKeyDetails,
        RevokeKeyDetails,
        SubmitKycDetails,
        TransferIntent,
        UpdateKeyDetails,
    )

    policy = Policy(naming=NAMING, funding_caps={}, unknown_outcome_max_ms=3_600_000)
    issue = IssueKeyDetails(uid=UID, generation=2, permissions=["general"], ip_whitelist=[])
    line = dict(uid=UID, currency="USDT", amount=Decimal("250"), direction="OUT", sub_wallet="TRADE")
    fund = TransferIntent(key="e-kyc#0", purpose=TransferPurpose.FUND, broker_wallet="MAIN", day="20261118", **line)
    cases = [
        (IntentKind.CREATE_SUB_ACCOUNT, "nd-name", CreateSubAccountDetails(attempt=0), "subaccount", "Add SubAccount"),
        (IntentKind.ISSUE_KEY, "prov-g0002", issue, "key:2", "Add SubAccount API"),
        (
            IntentKind.REVOKE_KEY,
            "k1",
            RevokeKeyDetails(uid=UID, reason="rotated"),
            "revoke:k1",
            "Delete SubAccount API",
        ),
        (IntentKind.SUBMIT_KYC, "e-kyc", SubmitKycDetails(uid=UID, event_id="e-kyc"), "kyc", "proxy KYC submission"),
        (IntentKind.TRANSFER, "oid-0", fund, "fund:e-kyc#0", "transfer oid-0 of line e-kyc#0 (250 USDT"),
    ]
    for kind, token, details, step, names in cases:
        intent = Intent(kind=kind, token=token, started_at_ms=3_500_000, first_at_ms=0, details=details)
        assert retry_overdue(intent, 3_599_999, policy) is None, kind
        overdue = retry_overdue(intent, 3_600_000 + 5 * 60_000, policy)
        assert overdue is not None, kind
        assert overdue[0] == step and names in overdue[1] and "every attempt for 1 h 5 min" in overdue[1], overdue
    orphans = issue.model_copy(update={"orphans_unsure": ["k9"]})
    intent = Intent(kind=IntentKind.ISSUE_KEY, token="prov-g0002", started_at_ms=9, first_at_ms=0, details=orphans)
    overdue = retry_overdue(intent, 3_600_000, policy)
    assert overdue is not None and overdue[0] == "key:2", overdue
    assert "Delete SubAccount API (keys k9" in overdue[1] and "1 h 0 min" in overdue[1], overdue
    sweep = fund.model_copy(update={"key": "sweep:3", "purpose": TransferPurpose.SWEEP, "direction": "IN"})
    intent = Intent(kind=IntentKind.TRANSFER, token="s-oid", started_at_ms=9, first_at_ms=0, details=sweep)
    overdue = retry_overdue(intent, 3_600_000, policy)
    assert overdue is not None and overdue[0] == "sweep", overdue
    assert "the sweep of 250 USDT from the sub-account's TRADE wallet" in overdue[1], overdue
    update = UpdateKeyDetails(uid=UID, label="prov-g0000", permissions=["general"], ip_whitelist=[])
    intent = Intent(kind=IntentKind.UPDATE_KEY, token="t", started_at_ms=0, details=update)
    assert retry_overdue(intent, 10 * 3_600_000, policy) is None
