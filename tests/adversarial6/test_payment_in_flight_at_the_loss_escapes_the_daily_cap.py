"""``provisioner recover`` seeds the day's Special Account caps from the ledger once, at recover time, and counts
the heard payments the ledger may not list yet (adv5). A transfer in flight at the loss — executed by the exchange,
its answer never recorded, so no outcome was written and none is heard — is neither: the ledger lists it only
after its lag, and it counts on the day only when its customer's re-publication finds it. Until then (and the
declaration of 8b75a05 does not wait for it) every other customer is paid against a day that misses it."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import all_paid, onboard_with_a_key, outbound, topup, total
from tests.core.harness import Crash, Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import declare_republished, recover


def test_a_payment_in_flight_at_the_loss_lets_another_customer_past_the_daily_cap(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: daily cap 1000 USDT; the ledger lists an entry 10 minutes after the transfer (the worker knows the
    lag). Customer X's 600 USDT top-up is sent; the exchange executes it and the worker dies before recording the
    answer — Redis restarts without persistence at that moment. The on-call runs ``provisioner recover --heard
    received.jsonl --heard-complete`` a minute later (X's outcome was never written, so nothing was waiting for
    delivery: the flag is right). The ledger does not list X's transfer yet: the day is seeded with 0. The upstream
    re-publishes customer Y first (approved with a 600 USDT line), X later; the on-call then declares the
    re-publication complete.

    What happens: Y is audited, waits the settle delay (by then the ledger lists X's transfer — nothing reads it
    for the day), and its 600 USDT reserves against a day that shows 0 used: paid. X is re-published, its line
    looked for and found (``_found`` reserves it with ``cap=None``): 1200 USDT left the Special Account today, cap
    1000.

    Why it is wrong: the README says the day's caps are rebuilt by ``recover`` "never less than was paid"; the
    daily cap holds after a loss whatever order the upstream re-publishes in (adv5 fixed this for heard payments
    only). A payment in flight at the loss is the one every recovery has; the day must
    count what the ledger lists once its lag has passed (re-seeded before the first line is decided, which the
    settle delay already waits for), not when its customer happens to be re-published."""
    config = SandboxConfig.from_dict({"ledger_lag_ms": 600_000})
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000",
        PROVISIONER_LEDGER_LAG_MS="600000",
    )
    try:
        ref_x, _ = onboard_with_a_key(rig, "flight-x")
        ev_x = events_for("flight-x", funding=())
        line_x = topup("flight-x", "topup", 5, [("USDT", "600")])
        rig.publish(line_x)
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="after")  # the exchange moved it; we died
        with pytest.raises(Crash):
            rig.run(ref_x)
        assert total(all_paid(rig)) == Decimal(600)
        heard = outbound(rig.app)  # every outcome written was delivered; X's was never written
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
            assert not report.seeded, report  # the ledger does not list X's transfer yet

            ev_y = events_for("flight-y", funding=(("USDT", "600"),))
            ref_y = redeliver(app, [ev_y["created"], ev_y["kyc"]])  # Y is re-published first
            settle_with(rig, app, ref_y)
            rig.clock.advance_ms(3_600_000)
            app.due.schedule(ref_y, int(rig.clock() * 1000))
            settle_with(rig, app, ref_y)

            ref_x = redeliver(app, [ev_x["created"], ev_x["kyc"], line_x])  # X later
            settle_with(rig, app, ref_x)
            declare_republished(app, stamps_kept=True)
            settle_with(rig, app, ref_x)
            settle_with(rig, app, ref_y)

            moved = total(all_paid(rig))
            assert moved <= Decimal(1000), f"{moved} USDT left the Special Account today, daily cap 1000"
        finally:
            app.close()
    finally:
        rig.close()
