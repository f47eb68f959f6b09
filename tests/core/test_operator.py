"""A transfer whose outcome the exchange's records cannot tell is blocked for a human, whose verdict is then
applied and told to the upstream."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for
from worker.provisioning.operator import OperatorError, settle_transfer


@pytest.mark.parametrize(("fault", "verdict"), [("drop", True), ("5xx", False)])
def test_ambiguous_transfer_waits_for_the_operator(redis_url: str, key_prefix: str, fault: str, verdict: bool) -> None:
    """The exchange may execute a repeated clientOid and its ledger names no orderIds: nothing is sent again until
    an operator says whether the money moved; then exactly one transfer stands and the upstream hears it."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "none"}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="accept",
    )
    try:
        ev = events_for(f"ambiguous-{fault}")
        (ref,) = rig.publish(ev["created"])
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {fault: 1.0}}}})
        rig.publish(ev["kyc"])
        rig.run(ref)
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {fault: 0.0}}}})
        if fault == "5xx":  # nothing of ours moved, but someone else's transfer of the same amount did
            rig.exchange.credit(uid, "USDT", "TRADE", "1")
            with rig.exchange.lock:
                rig.exchange.state.transfer(
                    client_oid="someone-else",
                    currency="USDT",
                    amount=Decimal(250),
                    direction="OUT",
                    account_type="MAIN",
                    special_uid=uid,
                    special_account_type="TRADE",
                    now_ms=rig.exchange.now_ms(),
                    processing_ms=0,
                    ledger_context="none",
                )
        rig.settle(ref)

        record = rig.record(ref)
        (step,) = [s for s, b in record.blocked.items() if b.manual]
        assert step == "fund:ambiguous-" + fault + "-kyc_approved#0"
        assert rig.blocked and "check with KuCoin" in str(rig.blocked[-1])
        transfers_before = len(rig.state()["transfers"])
        rig.settle(ref)
        assert len(rig.state()["transfers"]) == transfers_before, "nothing is sent again on a guess"

        with pytest.raises(OperatorError):
            settle_transfer(rig.app, ref, "fund:nope", committed=True, order_id=None, who="test")
        settle_transfer(rig.app, ref, step, committed=verdict, order_id=None, who="oncall")
        rig.settle(ref)
        out = [t for t in rig.state()["transfers"] if t["direction"] == "OUT" and t["clientOid"] != "someone-else"]
        assert sum(Decimal(t["amount"]) for t in out) == 250
        completed = [e for e in rig.outbound() if e["type"] == "funding.completed"]
        assert [e["key"] for e in completed] == [step.removeprefix("fund:")]
        record = rig.record(ref)
        assert not record.blocked
        journal = rig.app.store.journal(ref)
        assert any(e["actor"] == "operator" and e["decided_by"] == "oncall" for e in journal)
    finally:
        rig.close()
