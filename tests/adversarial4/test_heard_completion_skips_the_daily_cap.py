"""A line found paid after a loss "counts on today's cap, whatever it says: the money moved" (``_found`` reserves it
with ``cap=None``): the ledger ``recover`` seeded the day from may not list it yet (KuCoin's ledger lags). A line
whose completion the upstream heard is recorded by ``_seed_heard`` instead — committed, never looked for — and is
never counted on the Special Account's daily cap: the day's cap is overrun by what ``--heard`` recorded."""

from __future__ import annotations

import shutil
from decimal import Decimal

from sandbox import SandboxConfig
from tests.adversarial.helpers import all_paid, onboard_with_a_key, outbound, topup, total
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import recover


def test_a_line_recorded_from_heard_is_not_counted_on_the_daily_cap(redis_url: str, key_prefix: str) -> None:
    """Scenario: the Special Account's daily cap is 1000 USDT; its ledger lists an entry 10 minutes after the
    transfer (``ledger_lag_ms``; the worker is configured with that lag). Customer X's 600 USDT top-up is paid
    (``funding.completed``). A minute later Redis loses everything; ``provisioner recover --heard`` with what the
    upstream received: the daily caps are seeded from the ledger, which does not list X's transfer yet (nothing
    moved today, as far as it shows). X's events are re-published and worked: the audit records X's line
    committed, as heard. Then customer Y (new) is approved with a 600 USDT line, the same day.

    What happens: X's line never reserved anything on today's cap (``_seed_heard`` records it without the
    ``reserve(cap=None)`` that ``_found`` does for a line found paid); Y's line reserves 600 against a day that
    shows 0 used and is paid. 1200 USDT left the Special Account today, cap 1000.

    Control: without ``--heard`` X's line is looked for once the settle delay has passed, found, and counted on
    today's cap (``_found``); Y is then held to the cap.

    Why it is wrong: the daily cap holds after a loss (README: "daily caps rebuilt from the Special Account's
    ledger"); a line recorded as paid from what the upstream heard moved money today just as much as one the
    ledger shows, and must count on its day's cap (or the recovery must re-seed once the ledger has caught up)."""
    config = SandboxConfig.from_dict({"ledger_lag_ms": 600_000})
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000",
        PROVISIONER_LEDGER_LAG_MS="600000",  # the worker knows the ledger's lag
    )
    try:
        ref_x, _ = onboard_with_a_key(rig, "daily-x")
        ev_x = events_for("daily-x", funding=())
        line_x = topup("daily-x", "topup", 5, [("USDT", "600")])
        rig.publish(line_x)
        rig.settle(ref_x)
        assert total(all_paid(rig)) == Decimal(600)
        heard = outbound(rig.app)
        rig.clock.advance_ms(60_000)

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: Redis restarted without persistence", heard=outcomes_from_events(heard))
            assert report.heard == 1 and not report.seeded, report  # the ledger does not list X's transfer yet
            ref_x = redeliver(app, [ev_x["created"], ev_x["kyc"], line_x])
            settle_with(rig, app, ref_x)

            ev_y = events_for("daily-y", funding=(("USDT", "600"),))
            ref_y = redeliver(app, [ev_y["created"], ev_y["kyc"]])
            settle_with(rig, app, ref_y)
            rig.clock.advance_ms(3_600_000)
            app.due.schedule(ref_y, int(rig.clock() * 1000))
            settle_with(rig, app, ref_y)

            moved = total(all_paid(rig))
            assert moved <= Decimal(1000), f"{moved} USDT left the Special Account today, daily cap 1000"
        finally:
            app.close()
    finally:
        rig.close()
