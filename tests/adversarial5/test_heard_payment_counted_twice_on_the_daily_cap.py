"""c8a3458 (adv4 break 7): a payment recorded from what the upstream heard reserves on its day's Special Account
cap "whatever the cap says (the ledger ``recover`` seeded the day from may not list it yet)". When the ledger
*does* list it — the ordinary case, its lag is minutes — ``recover`` has already seeded the day with it, and the
audit adds it a second time: after a ``recover --heard`` every payment of the day counts twice, and a later line
that fits the cap is refused for good (``funding.refused``)."""

from __future__ import annotations

import shutil
from decimal import Decimal

from tests.adversarial.helpers import all_paid, onboard_with_a_key, outbound, outbound_of, topup, total
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import declare_republished, recover


def test_a_heard_payment_the_ledger_lists_counts_twice_and_refuses_a_line_that_fits(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: the Special Account's daily cap is 1000 USDT. Customer X's 600 USDT top-up is paid. An hour later
    Redis loses everything; ``provisioner recover --heard received.jsonl --heard-complete`` (the upstream's
    outcomes, nothing was waiting): the daily cap is seeded from the ledger, which lists X's transfer (600 used
    today — exactly right). X's events are re-published and worked. Then customer Y is approved the same day with
    a 300 USDT line: 600 + 300 = 900 of 1000.

    What happens: X's audit records the heard completion and ``_count_heard_payments`` reserves 600 more on today
    (``cap=None``): the day shows 1200 used. Y's 300 USDT is refused: "the Special Account's daily cap of 1000
    USDT would be exceeded (used 1200)" — ``funding.refused``, final.

    Why it is wrong: money that should move does not, and the refusal is a verdict the upstream acts on. The
    heard payment was already counted (the seed is what the ledger shows moved today); a heard payment should
    count only where the seeded day cannot include it (e.g. re-seed, or reserve only what the seed missed), not
    unconditionally (without that reservation the day shows the 600 the ledger lists, and Y is paid)."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000")
    try:
        ref_x, _ = onboard_with_a_key(rig, "twice-x")
        ev_x = events_for("twice-x", funding=())
        line_x = topup("twice-x", "topup", 5, [("USDT", "600")])
        rig.publish(line_x)
        rig.settle(ref_x)
        assert total(all_paid(rig)) == Decimal(600)
        heard = outbound(rig.app)
        rig.clock.advance_ms(3_600_000)

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
            assert report.heard == 1 and list(report.seeded.values()) == ["600"], report
            ref_x = redeliver(app, [ev_x["created"], ev_x["kyc"], line_x])
            settle_with(rig, app, ref_x)
            declare_republished(app)  # the re-publication is complete (a customer without a sub-account waits for it)

            ev_y = events_for("twice-y", funding=(("USDT", "300"),))
            ref_y = redeliver(app, [ev_y["created"], ev_y["kyc"]])
            settle_with(rig, app, ref_y)
            rig.clock.advance_ms(1_800_000)
            app.due.schedule(ref_y, int(rig.clock() * 1000))
            settle_with(rig, app, ref_y)

            moved = total(all_paid(rig))
            refused = [e.get("reason") for e in outbound_of(app, "funding.refused")]
            assert moved == Decimal(900) and not refused, (
                f"{moved} USDT moved today (cap 1000); Y's 300 USDT line refused: {refused}"
            )
        finally:
            app.close()
    finally:
        rig.close()
