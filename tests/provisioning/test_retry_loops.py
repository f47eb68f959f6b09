"""A write resolved by reading ("read, then not done, then write again") that fails on every attempt must reach an
operator, never loop silently.

A create of the sub-account (token: its deterministic name), an issuance of a key (token: its label), a key's
revocation (token: the api key): each attempt unanswered (5xx, a dropped connection) is settled by reading the
exchange, found not done, and written again. The write's first moment is kept across those rounds, so:

- the pending-intents index (``provisioner_intent_oldest_age_seconds``, alert ``UnknownOutcomesUnresolved`` above
  600 s) counts from the first attempt, not from the latest;
- past ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS`` the step is blocked instead of written again: not manual (an
  operator's retry writes it again), ``provisioning.failed`` told upstream, a dead letter, ``CustomersBlocked``,
  with a reason naming the write and how long;
- once the exchange answers again, the retry completes with exactly one sub-account, one key.

A funding line (token: its clientOid, the same on every round: only a spent clientOid counts towards
``MAX_ATTEMPTS``) and a proxy-KYC submission (token: the approval's event id) loop the same way, and are bounded
the same way; so is a sweep left unconfirmed round after round (each round a new clientOid).

Real Redis and the in-process simulator with its fault switches; the rig's fake clock jumps from wake-up to
wake-up (no sleeping).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from handlers import steps
from handlers.records import IntentKind
from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for, kyc_documents
from tests.provisioning.test_stuck_unknown import ALERT_S, _drive, _now_ms, _oldest_pending_age_s
from worker.provisioning.operator import settle_transfer

BOUND_S = 3600
BOUND_MS = BOUND_S * 1000


def _faults(rig: Rig, endpoint: str, **rates: float | None) -> None:
    """Switch ``endpoint``'s faults (``5xx``: refused before anything is done; ``drop``: done, answer lost)."""
    rig.exchange.update_config({"faults": {"per_endpoint": {endpoint: rates or None}}})


def _assert_ages_from_first(rig: Rig, ref: str, kind: IntentKind, first: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The customer's write of ``kind`` is pending, indexed from ``first`` and older than the alert's threshold."""
    record = rig.record(ref)
    assert record.pending is not None and record.pending.kind is kind, record.pending
    since = rig.app.redis.zscore(rig.app.keys.pending, ref)
    assert since is not None and int(since) == first, f"the index counts from {since and int(since) - first} ms late"
    age = _oldest_pending_age_s(rig, monkeypatch)
    assert age > ALERT_S, f"the oldest intent is {age:.0f} s old"


def _assert_blocked(rig: Rig, ref: str, step: steps.StepId, first: int, *, names: str, manual: bool = False) -> str:
    """``step`` is blocked for an operator once the bound passed, told and counted; its reason. ``manual``: a
    funding line, whose intent the block keeps for an operator's verdict (counted in doubt meanwhile)."""
    assert rig.blocked, f"nothing blocked after {(_now_ms(rig) - first) // 60_000} min"
    elapsed = _now_ms(rig) - first
    assert BOUND_MS <= elapsed < BOUND_MS + 5 * 60_000, f"blocked after {elapsed} ms"
    record = rig.record(ref)
    block = record.blocked.get(step)
    assert block is not None, record.blocked
    assert block.manual is manual, "an operator's retry must lift it" if not manual else "an operator decides"
    assert block.intent is not None or not manual, "the operator's verdict is about the write the block keeps"
    assert names in block.reason and re.search(r"\b1 h \d+ min\b", block.reason), block.reason
    assert "PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS" in block.reason, block.reason
    assert record.pending is None, record.pending
    assert rig.app.redis.zscore(rig.app.keys.blocked, ref) is not None, "CustomersBlocked does not count it"
    assert any(step in r for b in rig.blocked for r in b.reasons), rig.blocked
    failed = [e["step"] for e in rig.outbound() if e["type"] == "provisioning.failed"]
    assert failed == [step], failed
    return block.reason


def _live_keys(rig: Rig) -> list[dict[str, Any]]:
    return [k for k in rig.state()["apiKeys"] if k["deletedAt"] is None]


def test_a_create_failing_every_time_ages_from_its_first_attempt(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Add SubAccount answered 5xx every time: each attempt is found not done by the listing and sent again, and
    the pending index keeps the first attempt's moment, so the age passes the alert's 600 s."""
    rig = Rig(redis_url, key_prefix)
    try:
        _faults(rig, "add_sub_account", **{"5xx": 1.0})
        (ref,) = rig.publish(events_for("loop-create-age")["created"])
        first = _now_ms(rig)
        _drive(rig, ref, for_ms=15 * 60_000)
        creates = rig.transport.seen.get(("POST", "/api/v1/broker/nd/account"), 0)
        assert creates >= 5, f"created {creates} times only"
        _assert_ages_from_first(rig, ref, IntentKind.CREATE_SUB_ACCOUNT, first, monkeypatch)
    finally:
        rig.close()


def test_a_create_failing_past_the_bound_is_blocked_and_a_retry_creates_one(redis_url: str, key_prefix: str) -> None:
    """Add SubAccount failing on every attempt for longer than the bound: the create is blocked for an operator;
    once the exchange answers, ``provisioner customer retry`` creates exactly one sub-account."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S))
    try:
        _faults(rig, "add_sub_account", **{"5xx": 1.0})
        ev = events_for("loop-create-bound")
        (ref,) = rig.publish(ev["created"])
        first = _now_ms(rig)
        _drive(rig, ref, for_ms=2 * BOUND_MS, until_blocked=True)
        _assert_blocked(rig, ref, steps.SUBACCOUNT, first, names="Add SubAccount")

        _faults(rig, "add_sub_account")
        rig.run(ref, retry_blocked=True)
        rig.publish(ev["kyc"])
        rig.settle(ref)
        record = rig.record(ref)
        assert not record.blocked and record.pending is None, (record.blocked, record.pending)
        assert record.sub_account is not None and len(rig.state()["subAccounts"]) == 1, rig.state()["subAccounts"]
        assert len(record.live_keys) == 1 and len(_live_keys(rig)) == 1
    finally:
        rig.close()


def _subaccount_ready(rig: Rig, customer: str) -> tuple[str, dict[str, dict[str, Any]]]:
    ev = events_for(customer, funding=())
    (ref,) = rig.publish(ev["created"])
    rig.settle(ref)
    assert rig.record(ref).sub_account is not None
    return ref, ev


def test_an_issuance_failing_every_time_ages_from_its_first_attempt(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Add SubAccount API answered 5xx every time: found not done by the key listing and sent again, and the
    pending index keeps the first attempt's moment."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, ev = _subaccount_ready(rig, "loop-issue-age")
        _faults(rig, "add_sub_account_api", **{"5xx": 1.0})
        rig.publish(ev["kyc"])
        first = _now_ms(rig)
        _drive(rig, ref, for_ms=15 * 60_000)
        _assert_ages_from_first(rig, ref, IntentKind.ISSUE_KEY, first, monkeypatch)
    finally:
        rig.close()


@pytest.mark.parametrize("fault", ["5xx", "drop"])
def test_an_issuance_failing_past_the_bound_is_blocked_and_a_retry_issues_one(
    redis_url: str, key_prefix: str, fault: str
) -> None:
    """Add SubAccount API failing on every attempt for longer than the bound (refused before anything is done, or
    done with its answer lost: the key is then deleted as an orphan and issued again): the issuance is blocked for
    an operator; once the exchange answers, the retry issues exactly one key (no orphan of the earlier attempts
    left)."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S))
    try:
        ref, ev = _subaccount_ready(rig, f"loop-issue-{fault}")
        _faults(rig, "add_sub_account_api", **{fault: 1.0})
        rig.publish(ev["kyc"])
        first = _now_ms(rig)
        _drive(rig, ref, for_ms=2 * BOUND_MS, until_blocked=True)
        _assert_blocked(rig, ref, steps.issue(0), first, names="Add SubAccount API")

        _faults(rig, "add_sub_account_api")
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)
        record = rig.record(ref)
        assert not record.blocked and record.pending is None, (record.blocked, record.pending)
        assert [k.api_key for k in record.live_keys] == [k["apiKey"] for k in _live_keys(rig)], _live_keys(rig)
        assert len(record.live_keys) == 1
        issued = [e for e in rig.outbound() if e["type"] == "api_key.issued"]
        assert len(issued) == 1, issued
    finally:
        rig.close()


def test_a_revocation_failing_past_the_bound_is_blocked_and_the_offboarding_goes_on(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delete SubAccount API answered 5xx on every attempt at offboarding: found still listed and sent again, aged
    from the first attempt, then blocked past the bound (the offboarding waits for it, as for any blocked
    revocation); the retry revokes the key and the customer closes."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S))
    try:
        ev = events_for("loop-revoke", funding=())
        (ref,) = rig.publish(ev["created"])
        rig.publish(ev["kyc"])
        rig.settle(ref)
        (key,) = rig.record(ref).live_keys
        _faults(rig, "delete_sub_account_api", **{"5xx": 1.0})
        rig.publish(ev["offboard"])
        first = _now_ms(rig)
        _drive(rig, ref, for_ms=15 * 60_000)
        _assert_ages_from_first(rig, ref, IntentKind.REVOKE_KEY, first, monkeypatch)
        _drive(rig, ref, for_ms=2 * BOUND_MS, until_blocked=True)
        _assert_blocked(rig, ref, steps.revoke(key.api_key), first, names="Delete SubAccount API")
        assert rig.record(ref).closed_at_ms is None

        _faults(rig, "delete_sub_account_api")
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)
        record = rig.record(ref)
        assert record.closed_at_ms is not None and not _live_keys(rig), (record.blocked, _live_keys(rig))
    finally:
        rig.close()


def test_an_orphan_never_deleted_blocks_the_issuance_and_the_retry_deletes_it_first(
    redis_url: str, key_prefix: str
) -> None:
    """An issuance whose answer is lost leaves a key whose secret we never held; its delete refused (5xx) on every
    attempt keeps the issuance pending (aged from its first send) for ever: past the bound the issuance is blocked
    with the intent (the orphans it still has to delete) kept; the retry lists and deletes the orphan before it
    issues the one key."""
    config = SandboxConfig.from_dict(
        {"faults": {"per_endpoint": {"add_sub_account_api": {"drop": 1.0}, "delete_sub_account_api": {"5xx": 1.0}}}}
    )
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S))
    try:
        ref, ev = _subaccount_ready(rig, "loop-orphan")
        rig.publish(ev["kyc"])
        first = _now_ms(rig)
        _drive(rig, ref, for_ms=2 * BOUND_MS, until_blocked=True)
        reason = _assert_blocked(rig, ref, steps.issue(0), first, names="Delete SubAccount API")
        (orphan,) = _live_keys(rig)
        assert orphan["apiKey"] in reason, reason
        kept = rig.record(ref).blocked[steps.issue(0)].intent
        assert kept is not None and kept.kind is IntentKind.ISSUE_KEY, kept

        _faults(rig, "add_sub_account_api")
        _faults(rig, "delete_sub_account_api")
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)
        record = rig.record(ref)
        assert not record.blocked and record.pending is None, (record.blocked, record.pending)
        assert [k.api_key for k in record.live_keys] == [k["apiKey"] for k in _live_keys(rig)], _live_keys(rig)
        assert orphan["apiKey"] not in {k["apiKey"] for k in _live_keys(rig)}
    finally:
        rig.close()


def test_a_funding_line_failing_past_the_bound_is_blocked_and_a_retry_pays_it_once(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transfer answered 5xx on every send: the ledger shows it not done, it is sent again under the same
    clientOid (no attempt is spent, so ``MAX_ATTEMPTS`` never ends it): aged from its first send, blocked past the
    bound for an operator's verdict (the ledger's silence is no proof: counted in doubt, adv56); the operator's
    "not committed" pays the line once."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S))
    try:
        ev = events_for("loop-fund", funding=(("USDT", "250"),))
        (ref,) = rig.publish(ev["created"])
        _faults(rig, "transfer", **{"5xx": 1.0})
        rig.publish(ev["kyc"])
        first = _now_ms(rig)
        _drive(rig, ref, for_ms=15 * 60_000)
        _assert_ages_from_first(rig, ref, IntentKind.TRANSFER, first, monkeypatch)
        _drive(rig, ref, for_ms=2 * BOUND_MS, until_blocked=True)
        line = f"{ev['kyc']['id']}#0"
        _assert_blocked(rig, ref, steps.fund(line), first, names="transfer", manual=True)

        _faults(rig, "transfer")
        rig.run(ref, retry_blocked=True)
        assert steps.fund(line) in rig.record(ref).blocked, "a retry alone does not lift an operator's decision"
        settle_transfer(rig.app, ref, steps.fund(line), committed=False, who="oncall")
        rig.settle(ref)
        record = rig.record(ref)
        assert not record.blocked and record.pending is None, (record.blocked, record.pending)
        moved = [t for t in rig.state()["transfers"] if t["direction"] == "OUT" and t["status"] == "SUCCESS"]
        assert len(moved) == 1, moved
        assert [e["type"] for e in rig.outbound()].count("funding.completed") == 1
    finally:
        rig.close()


def test_a_kyc_submission_failing_past_the_bound_is_blocked_and_a_retry_submits_it(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proxy KYC: the submission answered 5xx every time, the KYC status shows nothing submitted, so it is
    submitted again: aged from its first attempt, blocked past the bound; the retry submits it."""
    config = SandboxConfig(kyc_review_ms=0)
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_PROXY_KYC="true",
        PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S),
    )
    try:
        ref, ev = _subaccount_ready(rig, "loop-kyc")
        _faults(rig, "submit_kyc", **{"5xx": 1.0})
        kyc = ev["kyc"]
        rig.publish({**kyc, "data": {**kyc["data"], "kyc": kyc_documents("Ann")}})
        first = _now_ms(rig)
        _drive(rig, ref, for_ms=15 * 60_000)
        _assert_ages_from_first(rig, ref, IntentKind.SUBMIT_KYC, first, monkeypatch)
        _drive(rig, ref, for_ms=2 * BOUND_MS, until_blocked=True)
        _assert_blocked(rig, ref, steps.KYC, first, names="KYC")

        _faults(rig, "submit_kyc")
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)
        record = rig.record(ref)
        assert not record.blocked and record.pending is None, (record.blocked, record.pending)
        assert record.kyc is not None and record.kyc.stage.value == "PASS", record.kyc
        assert len(record.live_keys) == 1
    finally:
        rig.close()


def test_a_sweep_failing_past_the_bound_is_blocked_and_a_retry_sweeps_and_closes(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offboarding, every sweep answered 5xx: the ledger cannot confirm it, so it is recorded unconfirmed and the
    next round (a new clientOid) reads the balances and sweeps again. The rounds keep the first sweep's moment (the
    age passes the alert's threshold) and past the bound the sweep is blocked (the customer stays open); the
    retry moves the money back and the customer closes."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S))
    try:
        ev = events_for("loop-sweep", funding=(("USDT", "250"),))
        (ref,) = rig.publish(ev["created"])
        rig.publish(ev["kyc"])
        rig.settle(ref)
        _faults(rig, "transfer", **{"5xx": 1.0})
        rig.publish(ev["offboard"])
        first = _now_ms(rig)
        _drive(rig, ref, for_ms=15 * 60_000)
        _assert_ages_from_first(rig, ref, IntentKind.TRANSFER, first, monkeypatch)
        _drive(rig, ref, for_ms=2 * BOUND_MS, until_blocked=True)
        _assert_blocked(rig, ref, steps.SWEEP, first, names="sweep")
        assert rig.record(ref).closed_at_ms is None

        _faults(rig, "transfer")
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)
        record = rig.record(ref)
        assert record.closed_at_ms is not None, (record.blocked, record.pending)
        back = [t for t in rig.state()["transfers"] if t["direction"] == "IN" and t["status"] == "SUCCESS"]
        assert len(back) == 1 and back[0]["amount"] == "250", back
    finally:
        rig.close()


def test_a_write_found_not_done_longer_than_the_bound_ago_starts_afresh(redis_url: str, key_prefix: str) -> None:
    """adv57: ``not_done`` keeps a write's first moment across "read, not done, write again" — but a write begun
    longer than the bound after it was found not done (a KYC review in between, a customer idle for days) is a new
    attempt: it must not inherit the old first moment and be blocked at its first failure. (The gap is made by
    hand: for a sub-account's create the planner writes again at once.)"""
    import json

    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S))
    try:
        ev = events_for("loop-stale")
        _faults(rig, "add_sub_account", drop=1.0)  # done, its answer lost: the intent stays pending
        (ref,) = rig.publish(ev["created"])
        first = _now_ms(rig)
        rig.run(ref)
        key = rig.app.keys.record(ref)
        stored = json.loads(rig.app.redis.get(key))
        token = stored["pending"]["token"]
        # found not done at its first attempt, then nothing for longer than the bound
        stored["pending"] = None
        stored["not_done"] = {"kind": "create_sub_account", "token": token, "first_at_ms": first, "at_ms": first}
        rig.app.redis.set(key, json.dumps(stored))
        rig.clock.advance_ms(BOUND_MS + 60_000)
        rig.run(ref)
        pending = rig.record(ref).pending
        assert pending is not None and pending.token == token, pending
        assert pending.first_at_ms == _now_ms(rig), (
            f"the write begun {(pending.started_at_ms - first) // 60_000} min after it was found not done took the "
            f"old first moment ({pending.first_at_ms - first} ms after the first attempt)"
        )
    finally:
        rig.close()
