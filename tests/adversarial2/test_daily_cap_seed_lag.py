"""``provisioner recover`` rebuilds the day's cap use from the Special Account's ledger once, at once: a transfer the
ledger does not list yet (within ``PROVISIONER_LEDGER_LAG_MS``) is not counted, and a line found paid afterwards
(``_found``) reserves nothing, so the day's cap is exceeded."""

from __future__ import annotations

import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import all_paid, total
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover


def test_a_payment_the_ledger_lists_late_is_not_counted_on_the_day_after_a_loss(
    redis_url: str, key_prefix: str
) -> None:
    """Per-day cap never exceeded: recovery seeds the day from a lagging ledger; 1600 paid on a 1000 cap."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"ledger_lag_ms": 20_000}),  # within PROVISIONER_LEDGER_LAG_MS
        PROVISIONER_LEDGER_LAG_MS="30000",
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000",
    )
    try:
        first = events_for("seed-lag-a", funding=(("USDT", "800"),))
        ref = rig.publish(first["created"], first["kyc"])[0]
        rig.run(ref)  # paid (answer received); the run goes on with the key
        assert total(all_paid(rig)) == 800

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        rig.clock.advance_ms(5_000)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [first["created"], first["kyc"]])
            declare_republished(app)  # the on-call, once the upstream has re-published
            settle_with(rig, app, ref)
            second = events_for("seed-lag-b", funding=(("USDT", "800"),))
            ref_b = redeliver(app, [second["created"], second["kyc"]])
            settle_with(rig, app, ref_b)
            paid_today = total(all_paid(rig))
            assert paid_today <= 1000, f"the Special Account paid {paid_today} USDT today against a daily cap of 1000"
        finally:
            app.close()
    finally:
        rig.close()
