"""The re-seed after a loss keeps the larger of what the ledger lists and what the day counts (``_SEED``,
worker/store/ledger.py). After a *rollback* (Redis restored from an older snapshot) the day counts the snapshot's
reservations: some are of lines not sent yet, which are sent later on that same reservation, while the ledger lists
payments the snapshot never reserved. The larger of the two is then less than the day's payments."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.adversarial.helpers import (
    all_paid,
    onboard_with_a_key,
    outbound,
    restore_state,
    snapshot_state,
    topup,
    total,
)
from tests.core.harness import Crash, Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.bootstrap import App
from worker.heard import outcomes_from_events
from worker.recovery import declare_republished, recover


def test_after_a_rollback_the_re_seed_lets_the_day_pay_past_its_cap(redis_url: str, key_prefix: str) -> None:
    """Scenario: daily cap 1000 USDT. Customer X's 400 USDT top-up is reserved and its intent written; the worker
    dies before sending it. Redis is snapshotted here (the day counts X's 400). Customer Y's 500 USDT top-up is then
    reserved and paid, and the worker dies before recording the answer (no outcome written). Redis is restored from
    the snapshot (detected: rolled back); the on-call runs ``provisioner recover --heard FILE --heard-complete``
    (true: nothing was waiting for delivery). A new customer Z asks for 500 USDT; the upstream then re-publishes Y
    and the on-call declares the re-publication complete.

    What happens: ``recover`` and the re-seed at the moment both keep max(ledger 500, day 400) = 500. Z's 500
    reserves against 500 used: paid. Y's line is found paid. X's pending line settles (nothing of it moved) and is
    sent on the reservation the snapshot kept: 1400 USDT left the Special Account today, cap 1000.

    Why it is wrong: the ledger module says the seeded day counts "never less than was paid", and 6e66652/e5df59f
    make every funding line wait for this re-seed precisely so the daily cap holds after a loss. A rollback is a
    loss ``recover`` handles (it detects ``rolled_back``); its day holds reservations of lines that have not moved,
    so the larger of the two counts is no bound on what was paid: the ledger's amount must be added to the
    reservations of lines it does not list (or the restored reservations dropped and re-taken on sending)."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000")
    try:
        ref_x, _ = onboard_with_a_key(rig, "rb-seed-x")
        ref_y, _ = onboard_with_a_key(rig, "rb-seed-y")
        rig.publish(topup("rb-seed-x", "topup", 5, [("USDT", "400")]))
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="before")
        with pytest.raises(Crash):
            rig.run(ref_x)
        assert total(all_paid(rig)) == 0
        assert rig.record(ref_x).pending is not None

        snapshot = snapshot_state(rig)
        line_y = topup("rb-seed-y", "topup", 6, [("USDT", "500")])
        rig.publish(line_y)
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="after", nth=2)  # Y paid; we died
        with pytest.raises(Crash):
            rig.run(ref_y)
        assert total(all_paid(rig)) == Decimal(500)
        heard = outbound(rig.app)
        rig.app.state.check()  # the host's mirror holds the newer write count

        restore_state(rig, snapshot)  # restored from the older snapshot
        app = second_host(rig, same_host=True)
        try:
            report = recover(
                app, reason="test: restored from a snapshot", heard=outcomes_from_events(heard), heard_complete=True
            )
            assert report.detected.startswith("rolled_back"), report
            ev_z = events_for("rb-seed-z", funding=(("USDT", "500"),))  # a new customer, asking after the loss
            ref_z = redeliver(app, [ev_z["created"], ev_z["kyc"]])
            _run(rig, app, ref_z)
            ev_y = events_for("rb-seed-y", funding=())  # the upstream re-publishes Y, then the on-call declares it
            redeliver(app, [ev_y["created"], ev_y["kyc"], line_y])
            _run(rig, app, ref_y)
            declare_republished(app, stamps_kept=True)
            _run(rig, app, ref_x)
            _run(rig, app, ref_y)
            moved = total(all_paid(rig))
            assert moved <= Decimal(1000), f"{moved} USDT left the Special Account today, daily cap 1000"
        finally:
            app.close()
    finally:
        rig.close()


def _run(rig: Rig, app: App, ref: str) -> None:
    for _ in range(3):
        app.due.schedule(ref, int(rig.clock() * 1000))
        settle_with(rig, app, ref)
        rig.clock.advance_ms(600_000)
