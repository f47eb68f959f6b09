"""Two funding lines of the same amount, one in doubt for an operator: the ledger judgement of the other must not
take the doubtful line's ledger entry for its own."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Crash, Rig
from worker.provisioning.operator import settle_transfer


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
        set_faults(rig, "get_transfer_history", **{"5xx": 1.0})  # the history lookup errors while #0 is judged
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="before", nth=2)  # #1's intent, then death
        rig.clock.advance_ms(120_000)
        with pytest.raises(Crash):
            rig.run(ref)
        record = rig.record(ref)
        assert [s for s, b in record.blocked.items() if b.manual] == ["fund:twins-topup#0"]
        assert record.pending is not None and record.pending.details["key"] == "twins-topup#1"
        set_faults(rig, "get_transfer_history", **{"5xx": 0.0})
        rig.clock.advance_ms(120_000)
        rig.settle(ref)

        paid = paid_to(rig, uid)
        assert len(paid) == 1, paid
        completed = [e["key"] for e in outbound_of(rig, "funding.completed")]
        assert "twins-topup#1" not in completed, f"line #1 was never sent but is told completed: {completed}"
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
        set_faults(rig, "get_transfer_history", **{"5xx": 1.0})
        rig.settle(ref)
        set_faults(rig, "get_transfer_history", **{"5xx": 0.0})
        assert [s for s, b in rig.record(ref).blocked.items() if b.manual] == ["fund:opcommit-first#0"]
        settle_transfer(rig.app, ref, "fund:opcommit-first#0", committed=True, order_id=None, who="oncall")
        rig.settle(ref)

        rig.clock.advance_ms(3 * 3_600_000)  # hours later, a top-up of the same amount; its answer is lost
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("opcommit", "second", 6, [("USDT", "100")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)

        paid = paid_to(rig, uid)
        assert len(paid) == 2, f"two lines of 100, {len(paid)} transfers: {[t['clientOid'] for t in paid]}"
    finally:
        rig.close()
