"""After a loss, each unrecorded funding line is judged from the ledger on its own: another unrecorded line of the
same amount is not counted as a sibling in doubt, so the first line judged takes the other's ledger entry for its
own. With the defaults (exchange ``dedupe``, worker ``unknown``, ledger context ``order_id``) a line whose transfer
FAILED is told completed on its twin's order, and the twin, re-sent, gets the same orderId back."""

from __future__ import annotations

import shutil

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of, paid_to
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import recover


@pytest.mark.parametrize("exchange_mode", ["dedupe", "accept"])
def test_a_line_whose_transfer_failed_is_told_completed_on_its_twins_order_after_a_loss(
    redis_url: str, key_prefix: str, exchange_mode: str
) -> None:
    """funding.completed iff the transfer exists: after a loss a never-paid line is told paid on its twin's order."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(duplicate_client_oid=exchange_mode))
    try:
        ev = events_for("twin-lines", funding=(("USDT", "250"), ("USDT", "250")))
        rig.exchange.update_config({"transfer_failure_share": 1.0})  # line #0 is accepted, then FAILS
        rig.transport.after.append(
            ("POST", "/api/v1/broker/nd/transfer", lambda: rig.exchange.update_config({"transfer_failure_share": 0.0}))
        )
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        assert len(paid_to(rig, uid)) == 1  # #1 paid; #0 failed and waits for an operator's retry
        assert "fund:twin-lines-kyc_approved#0" in rig.record(ref).blocked

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            paid = paid_to(rig, uid)
            told = outbound_of(app, "funding.completed")
            real = {(t["orderId"], t["clientOid"]) for t in paid}
            false = [(e["key"], e["order_id"]) for e in told if (e["order_id"], e["client_oid"]) not in real]
            assert not false, (
                f"told completed on another line's transfer: {false}; exchange: "
                f"{[(t['orderId'], t['clientOid'][:8]) for t in paid]}"
            )
        finally:
            app.close()
    finally:
        rig.close()
