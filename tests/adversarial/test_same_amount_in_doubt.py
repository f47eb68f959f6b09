"""Two funding lines of the same amount, one in doubt for an operator: the ledger judgement of the other must not
take the doubtful line's ledger entry for its own."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Crash, Rig
from worker.provisioning.operator import settle_transfer


def by_hand(rig: Rig, uid: str, amount: str) -> None:
    """A transfer to the customer's sub-account made with the management key outside the worker."""
    with rig.exchange.lock:
        rig.exchange.state.transfer(
            client_oid="by-hand",
            currency="USDT",
            amount=Decimal(amount),
            direction="OUT",
            account_type="MAIN",
            special_uid=uid,
            special_account_type="TRADE",
            now_ms=rig.exchange.now_ms(),
            processing_ms=0,
        )


def test_a_line_never_sent_is_told_completed_on_the_ledger_entry_of_a_line_in_doubt(
    redis_url: str, key_prefix: str
) -> None:
    """funding.completed iff the transfer exists: a never-sent line is judged paid on a doubtful line's ledger entry."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "order_id"}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "twins")
        set_faults(rig, "transfer", drop=1.0)  # line #0 commits, its answer is lost
        rig.publish(topup("twins", "topup", 5, [("USDT", "100"), ("USDT", "100")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        by_hand(rig, uid, "100")  # a transfer of the same amount made outside the worker: #0 cannot be told apart
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="before", nth=2)  # #1's intent, then death
        rig.clock.advance_ms(120_000)
        with pytest.raises(Crash):
            rig.run(ref)
        record = rig.record(ref)
        assert [s for s, b in record.blocked.items() if b.manual] == ["fund:twins-topup#0"]
        assert record.pending is not None and record.pending.details.key == "twins-topup#1"
        rig.clock.advance_ms(120_000)
        rig.settle(ref)

        paid = [t for t in paid_to(rig, uid) if t["clientOid"] != "by-hand"]
        assert len(paid) <= 2 and len({t["clientOid"] for t in paid}) == len(paid), paid
        told = {e["key"]: e["client_oid"] for e in outbound_of(rig, "funding.completed")}
        exists = {t["clientOid"] for t in paid}
        assert all(oid in exists for oid in told.values()), f"told completed without a transfer: {told}"
    finally:
        rig.close()


def test_an_operator_commit_without_order_id_makes_a_later_line_of_the_same_amount_pay_twice(
    redis_url: str, key_prefix: str
) -> None:
    """No double transfer: an operator commit without orderId explains away a later same-amount entry; re-sent."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "order_id"}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "opcommit")
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("opcommit", "first", 5, [("USDT", "100")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        by_hand(rig, uid, "100")  # a transfer of the same amount made outside the worker: undecidable
        rig.settle(ref)
        assert [s for s, b in rig.record(ref).blocked.items() if b.manual] == ["fund:opcommit-first#0"]
        settle_transfer(rig.app, ref, "fund:opcommit-first#0", committed=True, order_id=None, who="oncall")
        rig.settle(ref)

        rig.clock.advance_ms(3 * 3_600_000)  # hours later, a top-up of the same amount; its answer is lost
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("opcommit", "second", 6, [("USDT", "100")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)

        paid = [t for t in paid_to(rig, uid) if t["clientOid"] != "by-hand"]
        assert len(paid) == 2, f"two lines of 100, {len(paid)} transfers: {[t['clientOid'] for t in paid]}"
    finally:
        rig.close()
