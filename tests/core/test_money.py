"""Money moves exactly once on a live exchange: a transfer is settled only on evidence nothing else can produce
(the exchange's own record of *our* transfer), caps count every line that may have moved money, every verdict is
told to the upstream, and a blocked step blocks only what depends on it.

Each test reproduces a failure found by an adversarial review (issue 10) with real Redis and the simulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for
from worker.provisioning.operator import settle_transfer

CAP_1000 = "USDT=1000,BTC=1,ETH=5,USDC=1000,KCS=100"


def approval(customer: str, name: str, minute: int, funding: list[tuple[str, str]]) -> dict[str, Any]:
    """A later KYC approval of ``customer`` (same access as ``events_for``'s) with its own funding lines."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in customer)
    return {
        "id": f"{slug}-{name}",
        "type": "customer.kyc_approved",
        "customer_id": customer,
        "occurred_at": f"2026-11-18T10:{minute:02d}:00Z",
        "data": {
            "permissions": ["general", "spot"],
            "ip_whitelist": ["203.0.114.10"],
            "funding": [{"currency": c, "amount": a} for c, a in funding],
        },
    }


def outs(rig: Rig, uid: str) -> list[dict[str, Any]]:
    """Transfers into ``uid`` that moved money (the exchange's truth)."""
    return [
        t
        for t in rig.state()["transfers"]
        if t["direction"] == "OUT" and t["specialUid"] == uid and t["status"] != "FAILURE"
    ]


def outbound_of(rig: Rig, kind: str) -> list[dict[str, Any]]:
    return [e for e in rig.outbound() if e["type"] == kind]


def onboard_with_a_key(rig: Rig, customer: str) -> tuple[str, str]:
    """Created and approved without funding: the customer has a sub-account and a live trading key."""
    ev = events_for(customer, funding=())
    ref, _ = rig.publish(ev["created"], ev["kyc"])
    rig.settle(ref)
    record = rig.record(ref)
    assert record.sub_account is not None and len(record.live_keys) == 1
    return ref, record.sub_account.uid


def heal_after_first(rig: Rig, endpoint: str, kind: str) -> None:
    if rig.state()["stats"]["faults"].get(kind, 0):
        rig.exchange.update_config({"faults": {"per_endpoint": {endpoint: {kind: 0.0}}}})


def test_a_line_whose_money_may_have_moved_counts_against_the_cap(redis_url: str, key_prefix: str) -> None:
    """Cap 1000 USDT, a key exists, one approval asks for 600 + 600. Line 1 commits but its answer is lost and the
    customer trades 50 away before anyone looks: line 2 is never sent while line 1 may have moved money, line 1 is
    settled on the exchange's record of it, and the upstream hears a verdict for each line."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_CUSTOMER=CAP_1000)
    try:
        ref, uid = onboard_with_a_key(rig, "cap-twice")
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 1.0}}}})
        rig.publish(approval("cap-twice", "topup", 5, [("USDT", "600"), ("USDT", "600")]))
        rig.run(ref)
        heal_after_first(rig, "transfer", "drop")
        rig.exchange.credit(uid, "USDT", "TRADE", "-50")  # the customer trades while the answer is lost
        rig.settle(ref)

        paid = outs(rig, uid)
        assert sum(Decimal(t["amount"]) for t in paid) <= 1000, f"cap exceeded: {paid}"
        assert [t["amount"] for t in paid] == ["600"]
        completed = outbound_of(rig, "funding.completed")
        refused = outbound_of(rig, "funding.refused")
        assert [e["key"] for e in completed] == ["cap-twice-topup#0"]
        assert [e["key"] for e in refused] == ["cap-twice-topup#1"]
        assert not rig.record(ref).blocked
    finally:
        rig.close()


def test_an_operators_verdict_is_told_to_the_upstream_and_holds_the_cap(redis_url: str, key_prefix: str) -> None:
    """Where the exchange leaves a lost transfer undecidable (a ledger without context, a repeated clientOid that
    may execute again), it waits for an operator; the other line waits too rather than risk the cap; the
    operator's "committed" is told to the upstream as funding.completed."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "none"}),
        PROVISIONER_FUNDING_CAP_PER_CUSTOMER=CAP_1000,
        PROVISIONER_CLIENT_OID_BEHAVIOUR="accept",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "cap-operator")
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 1.0}}}})
        rig.publish(approval("cap-operator", "topup", 5, [("USDT", "600"), ("USDT", "600")]))
        rig.run(ref)
        heal_after_first(rig, "transfer", "drop")
        rig.exchange.credit(uid, "USDT", "TRADE", "-50")
        rig.settle(ref)

        record = rig.record(ref)
        manual = [step for step, b in record.blocked.items() if b.manual]
        assert manual == ["fund:cap-operator-topup#0"]
        assert len(outs(rig, uid)) == 1, "nothing sent again, and line 2 not sent while line 1 is in doubt"

        settle_transfer(rig.app, ref, manual[0], committed=True, order_id=None, who="oncall")
        rig.settle(ref)
        assert [t["amount"] for t in outs(rig, uid)] == ["600"]
        assert [e["key"] for e in outbound_of(rig, "funding.completed")] == ["cap-operator-topup#0"]
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["cap-operator-topup#1"]
    finally:
        rig.close()


@pytest.mark.parametrize("worker_mode", ["reject", "unknown"])
def test_a_duplicate_clientoid_refusal_is_proof_the_money_moved(
    redis_url: str, key_prefix: str, worker_mode: str
) -> None:
    """The exchange already holds our transfer for a line (our record of it was lost) and refuses the repeated
    clientOid: that answer proves the money moved. The line is committed and told, the daily reservation kept,
    and nothing an operator does afterwards sends it under a new clientOid."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(duplicate_client_oid="reject"),
        PROVISIONER_CLIENT_OID_BEHAVIOUR=worker_mode,
    )
    try:
        ev = events_for(f"dup-{worker_mode}")
        (ref,) = rig.publish(ev["created"])
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        line = f"{ev['kyc']['id']}#0"
        oid = rig.app.policy.naming.funding_client_oid(ref, line, 0)
        with rig.exchange.lock:  # what a lost write left behind: our transfer, executed, unknown to our records
            rig.exchange.state.transfer(
                client_oid=oid,
                currency="USDT",
                amount=Decimal(250),
                direction="OUT",
                account_type="MAIN",
                special_uid=uid,
                special_account_type="TRADE",
                now_ms=rig.exchange.now_ms(),
                processing_ms=0,
            )
        rig.publish(ev["kyc"])
        rig.settle(ref)
        rig.run(ref, retry_blocked=True)  # `provisioner customer retry`
        rig.settle(ref)

        assert len(outs(rig, uid)) == 1
        record = rig.record(ref)
        assert record.transfers[line].status == "committed"
        assert not record.blocked
        assert [e["key"] for e in outbound_of(rig, "funding.completed")] == [line]
        assert not outbound_of(rig, "provisioning.failed")
        day = "20261118"
        assert rig.app.ledger.used(day=day, currency="USDT") == 250, "the daily reservation stands"
    finally:
        rig.close()


def test_a_trade_of_the_same_amount_is_not_taken_for_a_transfer(redis_url: str, key_prefix: str) -> None:
    """After the first key exists: the transfer fails before anything committed while the customer's trade adds
    exactly the amount. The balance says "after", but no transfer exists: it is sent again, once, and
    funding.completed is told only for money that moved."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "mimic-trade")
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"5xx": 1.0}}}})

        def trade_and_heal() -> None:
            rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"5xx": 0.0}}}})
            rig.exchange.credit(uid, "USDT", "TRADE", "600")

        rig.transport.after.append(("POST", "/api/v1/broker/nd/transfer", trade_and_heal))
        rig.publish(approval("mimic-trade", "topup", 5, [("USDT", "600")]))
        rig.settle(ref)

        assert [t["amount"] for t in outs(rig, uid)] == ["600"], "the line is paid exactly once"
        assert [e["key"] for e in outbound_of(rig, "funding.completed")] == ["mimic-trade-topup#0"]
    finally:
        rig.close()


def test_a_deposit_before_the_first_key_is_not_taken_for_a_transfer(redis_url: str, key_prefix: str) -> None:
    """Before any key exists, anyone can still deposit: a deposit of the line's amount while the transfer failed
    before committing must not pass for the transfer."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("mimic-deposit")
        (ref,) = rig.publish(ev["created"])
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"5xx": 1.0}}}})

        def deposit_and_heal() -> None:
            rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"5xx": 0.0}}}})
            rig.exchange.credit(uid, "USDT", "TRADE", "250", deposit=True)

        rig.transport.after.append(("POST", "/api/v1/broker/nd/transfer", deposit_and_heal))
        rig.publish(ev["kyc"])
        rig.settle(ref)

        assert [t["amount"] for t in outs(rig, uid)] == ["250"]
        assert len(outbound_of(rig, "funding.completed")) == 1
    finally:
        rig.close()


def test_rotated_out_keys_are_revoked_even_when_the_cap_leaves_no_room(redis_url: str, key_prefix: str) -> None:
    """Five rotations within the grace period fill the exchange's cap of five live keys. The next generation is
    still issued (the oldest rotated-out key makes room), every superseded key is revoked once its grace is
    over, and the customer ends with exactly the newest key."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("rotations", funding=())
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        for i in range(1, 6):
            rig.publish(
                {
                    "id": f"rotations-rotate-{i}",
                    "type": "customer.key_rotation_requested",
                    "customer_id": "rotations",
                    "occurred_at": f"2026-11-18T10:{10 + i:02d}:00Z",
                    "data": {},
                }
            )
            rig.run(ref)  # within the grace period: no clock jump
        live = [k for k in rig.state()["apiKeys"] if k["deletedAt"] is None]
        assert len(live) <= 5
        assert "prov-g0005" in {k["label"] for k in live}, "the customer's rotation is honoured"

        rig.settle(ref)  # past every grace period
        live = [k for k in rig.state()["apiKeys"] if k["deletedAt"] is None]
        assert [k["label"] for k in live] == ["prov-g0005"]
        record = rig.record(ref)
        assert [k.generation for k in record.live_keys] == [5]
        assert not record.blocked
    finally:
        rig.close()


def topup(customer: str, name: str, minute: int, funding: list[tuple[str, str]]) -> dict[str, Any]:
    slug = "".join(ch if ch.isalnum() else "-" for ch in customer)
    return {
        "id": f"{slug}-{name}",
        "type": "customer.funding_requested",
        "customer_id": customer,
        "occurred_at": f"2026-11-18T10:{minute:02d}:00Z",
        "data": {"funding": [{"currency": c, "amount": a} for c, a in funding]},
    }


@pytest.mark.parametrize(("exchange_mode", "worker_mode"), [("dedupe", "unknown"), ("reject", "reject")])
def test_top_ups_on_a_trading_sub_account_are_paid_once_within_the_cap(
    redis_url: str, key_prefix: str, exchange_mode: str, worker_mode: str
) -> None:
    """Top-ups while the customer trades and deposits, with lost answers: each line is paid exactly once, the one
    that would cross the cap is refused, and the upstream hears a verdict for every line."""
    config = SandboxConfig.from_dict(
        {"duplicate_client_oid": exchange_mode, "activity": {"rate_per_s": 0.5, "deposit_share": 0.5}}
    )
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_FUNDING_CAP_PER_CUSTOMER=CAP_1000,
        PROVISIONER_CLIENT_OID_BEHAVIOUR=worker_mode,
    )
    try:
        ref, uid = onboard_with_a_key(rig, "topups")
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 0.5, "5xx": 0.3}}}})
        rig.publish(topup("topups", "t1", 5, [("USDT", "300"), ("BTC", "0.1")]))
        rig.settle(ref)
        rig.publish(topup("topups", "t2", 6, [("USDT", "500"), ("USDT", "300")]))
        rig.settle(ref)
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 0.0, "5xx": 0.0}}}})
        rig.settle(ref)

        paid = sorted((t["currency"], t["amount"]) for t in outs(rig, uid))
        assert paid == [("BTC", "0.1"), ("USDT", "300"), ("USDT", "500")]
        completed = sorted(e["key"] for e in outbound_of(rig, "funding.completed"))
        assert completed == ["topups-t1#0", "topups-t1#1", "topups-t2#0"]
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["topups-t2#1"]
        assert rig.state()["stats"]["activity"]["trades"] + rig.state()["stats"]["activity"]["deposits"] > 0
    finally:
        rig.close()


def test_a_top_up_after_offboarding_is_refused_never_paid(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "late-topup")
        rig.publish(
            {
                "id": "late-topup-off",
                "type": "customer.offboarded",
                "customer_id": "late-topup",
                "occurred_at": "2026-11-18T10:20:00Z",
                "data": {},
            },
            topup("late-topup", "t1", 19, [("USDT", "100")]),
        )
        rig.settle(ref)
        assert outs(rig, uid) == []
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["late-topup-t1#0"]
        assert rig.record(ref).closed_at_ms is not None
    finally:
        rig.close()


def test_offboarding_settles_a_refused_line_and_leaves_no_customer_counted_as_blocked(
    redis_url: str, key_prefix: str
) -> None:
    """A line the exchange refused (the Special Account was short) is blocked for a retry; the customer is then
    offboarded: the line is refused and told, and the closed customer no longer counts as blocked."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(initial_balances={"MAIN": {"USDT": "100"}, "TRADE": {}}))
    try:
        ev = events_for("short-then-gone")
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        assert "fund:short-then-gone-kyc_approved#0" in rig.record(ref).blocked
        assert rig.app.redis.zscore(rig.app.keys.blocked, ref) is not None
        rig.publish(ev["offboard"])
        rig.settle(ref)
        record = rig.record(ref)
        assert record.closed_at_ms is not None and not record.blocked
        assert rig.app.redis.zscore(rig.app.keys.blocked, ref) is None
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["short-then-gone-kyc_approved#0"]
    finally:
        rig.close()


def test_a_wrong_client_oid_setting_is_caught_and_the_exchange_distrusted(redis_url: str, key_prefix: str) -> None:
    """The setting says the exchange deduplicates, but it executes a repeated clientOid again: the re-send of a
    lost transfer pays twice. The ledger shows it later: the line is flagged for an operator, and from then on no
    lost transfer is re-sent to learn its fate (the ledger decides, or an operator)."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(duplicate_client_oid="accept"),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "wrong-setting")
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 1.0}}}})
        rig.publish(topup("wrong-setting", "t1", 5, [("USDT", "100")]))
        rig.run(ref)
        heal_after_first(rig, "transfer", "drop")
        rig.settle(ref)
        assert len(outs(rig, uid)) == 2, "paid twice: the setting was wrong"
        record = rig.record(ref)
        assert "double:wrong-setting-t1#0" in record.blocked
        assert rig.app.state.distrust_reason() is not None
        assert any(e["step"] == "double:wrong-setting-t1#0" for e in outbound_of(rig, "provisioning.failed"))

        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 1.0}}}})
        rig.publish(topup("wrong-setting", "t2", 6, [("USDT", "70")]))
        rig.run(ref)
        heal_after_first(rig, "transfer", "drop")
        rig.settle(ref)
        assert [t["amount"] for t in outs(rig, uid)].count("70") == 1, "distrusted: never re-sent to find out"
    finally:
        rig.close()
