"""94cf506 holds a transfer tied to a line by elimination for an operator where the per-customer cap would have
refused the line "had that transfer been another line's" (``_refusable_for_another``, handlers/planner.py):
``moved + doubt + 2 * line.amount > cap``. It counts one straggler only — of the line's own amount — and nothing
of the other transfers the ledger shows to the sub-account that no line we know explains: a line refused before
the loss because of two earlier payments, one of another amount, is tied to the one of its amount and told
``funding.completed``."""

from __future__ import annotations

import shutil

from tests.adversarial.helpers import onboard_with_a_key, outbound, outbound_of, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover


def test_an_early_declaration_still_tells_a_refused_line_completed_when_two_stragglers_paid_before_it(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: per-customer cap 1000 USDT, default exchange. Top-up A1 (400 USDT) is paid, top-up B (300 USDT)
    is paid, top-up A2 (400 USDT) is refused by the cap (400 + 300 + 400 > 1000; ``funding.refused``, heard).
    Redis loses everything; ``provisioner recover`` (no ``--heard``, the documented default). The upstream
    re-publishes creation, approval and A2 and says it is done; the on-call declares ``--republished
    --stamps-kept``. A1 and B, delayed in the upstream's queue, come ten minutes later.

    What happens: A2 is looked for: the ledger shows a 400 and a 300 USDT transfer to the sub-account that no line
    we hold explains; elimination ties the 400 to A2. The hold asks whether A2 would have fit had that 400 been
    another line's: 0 funded + 0 in doubt + 2 × 400 = 800 ≤ 1000, so no hold — the 300 USDT transfer beside it,
    just as unexplained, is not counted. A2 is recorded paid under A1's orderId and the upstream told
    ``funding.completed`` for a line it was told refused.

    Why it is wrong: this is exactly the case 94cf506 set out to hold (adv6's early declaration), with one more
    straggler. The transfers no line explains are the stragglers' payments: each must count in "would the line
    have fit" (their sum, not the line's amount once), or the hold is as good as the declaration's word."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "early2")
        ev = events_for("early2", funding=())
        a1 = topup("early2", "topup-a1", 5, [("USDT", "400")])
        b = topup("early2", "topup-b", 6, [("USDT", "300")])
        a2 = topup("early2", "topup-a2", 7, [("USDT", "400")])
        rig.publish(a1, b, a2)
        rig.settle(ref)
        assert sorted(t["amount"] for t in paid_to(rig, uid)) == ["300", "400"]
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["early2-topup-a2#0"]
        heard = outbound(rig.app)
        order_a1 = next(t["orderId"] for t in paid_to(rig, uid) if t["amount"] == "400")

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"], a2])
            settle_with(rig, app, ref)
            declare_republished(app, stamps_kept=True)  # early: A1 and B are still in the upstream's queue
            settle_with(rig, app, ref)
            rig.clock.advance_ms(10 * 60_000)
            redeliver(app, [a1, b])
            settle_with(rig, app, ref)

            told = {e["key"]: e.get("order_id") for e in heard + outbound(app) if e["type"] == "funding.completed"}
            assert "early2-topup-a2#0" not in told, (
                f"A2 (refused before the loss) told funding.completed under order {told.get('early2-topup-a2#0')}"
                f" (A1's is {order_a1})"
            )
        finally:
            app.close()
    finally:
        rig.close()
