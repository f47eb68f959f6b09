"""c8a3458 (adv4 break 7): a payment the upstream heard reserves on its day's Special Account cap — but only in
its customer's audit, which runs when that customer's events are re-published. The daily cap is seeded once, by
``recover``, from a ledger that may not list the payment yet (its lag). Until the re-publication reaches that
customer, every other customer is paid against a day that counts nothing of it: the order of the re-publication
decides whether the daily cap holds."""

from __future__ import annotations

import shutil
from decimal import Decimal

from sandbox import SandboxConfig
from tests.adversarial.helpers import all_paid, onboard_with_a_key, outbound, topup, total
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import recover


def test_a_heard_payment_is_not_counted_until_its_customer_is_republished(redis_url: str, key_prefix: str) -> None:
    """Scenario: adv4's ``test_heard_completion_skips_the_daily_cap`` with the re-publication in another order.
    Daily cap 1000 USDT; the ledger lists an entry 10 minutes after the transfer (the worker knows the lag).
    Customer X's 600 USDT top-up is paid; a minute later Redis loses everything; ``provisioner recover --heard
    received.jsonl --heard-complete``: the caps are seeded from the ledger, which does not list X's transfer yet
    (nothing moved today, as far as it shows); the heard file holds X's completion. The upstream re-publishes
    customer Y first (approved with a 600 USDT line), X later.

    What happens: Y is audited, waits the settle delay, and its 600 USDT reserves against a day that shows 0 used
    (X's heard payment is reserved only in X's audit, not yet run; nothing re-reads the ledger, which lists X's
    transfer by now): paid. X is then re-published and its heard payment reserved with ``cap=None``: 1200 USDT
    left the Special Account today, cap 1000.

    Why it is wrong: the daily cap holds after a loss whatever order the upstream re-publishes in. What the heard
    file says moved today is known at ``recover`` time for every customer: it must count on the day from then
    (reserved by ``recover`` itself, or the day re-seeded once the ledger's lag has passed), not when the
    customer it belongs to happens to be re-published."""
    config = SandboxConfig.from_dict({"ledger_lag_ms": 600_000})
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000",
        PROVISIONER_LEDGER_LAG_MS="600000",
    )
    try:
        ref_x, _ = onboard_with_a_key(rig, "order-x")
        ev_x = events_for("order-x", funding=())
        line_x = topup("order-x", "topup", 5, [("USDT", "600")])
        rig.publish(line_x)
        rig.settle(ref_x)
        assert total(all_paid(rig)) == Decimal(600)
        heard = outbound(rig.app)
        rig.clock.advance_ms(60_000)

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            report = recover(
                app,
                reason="test: Redis restarted without persistence",
                heard=outcomes_from_events(heard),
                heard_complete=True,
            )
            assert report.heard == 1 and not report.seeded, report  # the ledger does not list X's transfer yet

            ev_y = events_for("order-y", funding=(("USDT", "600"),))
            ref_y = redeliver(app, [ev_y["created"], ev_y["kyc"]])  # Y is re-published first
            settle_with(rig, app, ref_y)
            rig.clock.advance_ms(3_600_000)
            app.due.schedule(ref_y, int(rig.clock() * 1000))
            settle_with(rig, app, ref_y)

            ref_x = redeliver(app, [ev_x["created"], ev_x["kyc"], line_x])  # X later
            settle_with(rig, app, ref_x)

            moved = total(all_paid(rig))
            assert moved <= Decimal(1000), f"{moved} USDT left the Special Account today, daily cap 1000"
        finally:
            app.close()
    finally:
        rig.close()
