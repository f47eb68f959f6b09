"""After a loss, offboarding asks the ledger whether an unrecorded line was paid without waiting for what was sent
before the loss to be listed (``_funding`` waits ``transfer_resolve_delay_ms`` after ``recovered_at_ms``;
``_offboard``'s ``LookForTransfer`` does not): a line the exchange paid is told refused."""

from __future__ import annotations

import shutil

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of, paid_to
from tests.core.harness import Crash, Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import recover


def test_a_line_paid_just_before_the_loss_is_told_refused_by_the_offboarding(redis_url: str, key_prefix: str) -> None:
    """funding.completed iff the transfer exists: a line paid just before a loss is told refused at offboarding."""
    # the ledger lags 20 s, within PROVISIONER_LEDGER_LAG_MS (30 s): the settings hold
    config = SandboxConfig.from_dict({"ledger_lag_ms": 20_000})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_LEDGER_LAG_MS="30000")
    try:
        ev = events_for("look-early")
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="after")  # the exchange moved it; we died
        with pytest.raises(Crash):
            rig.run(ref)
        (paid,) = paid_to(rig, rig.state()["subAccounts"][0]["uid"])
        lose_everything(rig)  # and Redis came back empty
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        rig.clock.advance_ms(5_000)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"], ev["offboard"]])
            settle_with(rig, app, ref)
            line = f"{ev['kyc']['id']}#0"
            assert paid["status"] == "SUCCESS"
            refused = [e["key"] for e in outbound_of(app, "funding.refused")]
            assert line not in refused, f"line {line} was paid (order {paid['orderId']}) but is told refused"
        finally:
            app.close()
    finally:
        rig.close()
