"""The daily cap is reserved on the day a line's intent is first recorded; under dedupe/reject a lost transfer is
settled by re-sending it, and that re-send, which moves the money, is never counted on the day it executes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, topup, total
from tests.core.harness import Crash, Rig, events_for

DAY_CAP = "USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000"


@pytest.mark.parametrize("mode", ["dedupe", "reject"])
def test_a_resend_after_midnight_is_not_counted_on_the_day_it_pays(redis_url: str, key_prefix: str, mode: str) -> None:
    """Per-day cap never exceeded: a lost send re-sent after midnight is paid without a reservation on the new day."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(duplicate_client_oid=mode),
        PROVISIONER_CLIENT_OID_BEHAVIOUR=mode,
        PROVISIONER_FUNDING_CAP_PER_DAY=DAY_CAP,
    )
    try:
        ref_a, _ = onboard_with_a_key(rig, "late-a")
        ev_b = events_for("early-b", funding=(("USDT", "800"),))
        ref_b = rig.publish(ev_b["created"])[0]
        rig.settle(ref_b)

        rig.clock.now = datetime(2026, 11, 18, 23, 59, 50, tzinfo=UTC).timestamp()
        rig.publish(topup("late-a", "topup", 30, [("USDT", "800")]))
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="before")
        with pytest.raises(Crash):
            rig.run(ref_a)  # the intent (day 20261118) is recorded, the process dies before sending

        rig.clock.now = datetime(2026, 11, 19, 0, 0, 5, tzinfo=UTC).timestamp()
        rig.publish(ev_b["kyc"])  # the new day's funding: 800 of the 1000 cap
        rig.settle(ref_b)
        rig.settle(ref_a)  # the lost send is settled by re-sending it: it executes now

        midnight = int(datetime(2026, 11, 19, tzinfo=UTC).timestamp() * 1000)
        day2 = [t for t in rig.state()["transfers"] if t["direction"] == "OUT" and t["createdAt"] >= midnight]
        assert total(day2) <= 1000, f"paid {total(day2)} USDT on 2026-11-19 against a daily cap of 1000"
    finally:
        rig.close()
