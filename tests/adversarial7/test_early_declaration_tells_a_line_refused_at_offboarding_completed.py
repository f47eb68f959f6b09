"""94cf506 holds a transfer tied to a line by elimination only "where the per-customer cap would have refused the
line for it" (``_refusable_for_another``): the cap is taken as the only refusal the recovery may have lost. A line
refused because the customer was offboarded (``funding.refused``, heard) is not one the cap would have refused:
after an early declaration it takes a straggler's transfer and is told ``funding.completed``."""

from __future__ import annotations

import shutil

import pytest

from tests.adversarial.helpers import onboard_with_a_key, outbound, outbound_of, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover


@pytest.mark.xfail(
    strict=True,
    reason="adv7: undecidable from the exchange after an early declaration without --heard (README Limits)",
)
def test_an_early_declaration_tells_a_line_refused_at_offboarding_completed_with_another_lines_transfer(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: per-customer cap 5000 USDT, default exchange. Top-up A1 (600 USDT) is paid; the customer is
    offboarded with top-up A2 (600 USDT) just asked for: A2 is refused ("offboarded", ``funding.refused``, heard),
    the keys revoked, the 600 swept back, the customer closed. Redis loses everything; ``provisioner recover`` (no
    ``--heard``). The upstream re-publishes creation, approval, the offboarding and A2 and says it is done; the
    on-call declares ``--republished --stamps-kept``. A1, delayed in the upstream's queue, comes ten minutes later.

    What happens: offboarding looks A2 up before refusing it (caf3dc0): the ledger shows a 600 USDT transfer to the
    sub-account that no line we hold explains (A1's); elimination ties it to A2, and the hold does not apply
    (0 + 2 × 600 ≤ 5000: the cap would not have refused A2). A2 is recorded paid under A1's orderId and the upstream
    told ``funding.completed`` for a line it was told refused.

    Why it is wrong: the hold exists because "the declaration is the on-call's word" and a transfer tied by
    elimination may be a straggler's; the per-customer cap is not the only refusal a loss forgets (offboarding,
    attempts spent, an operator's ``--refused``, the daily cap: the customer view lists them). The upstream hears
    at most one verdict per line; a judgement by elimination of a line that may have been refused for any reason
    must wait for an operator (or for ``--heard``)."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_CUSTOMER="USDT=5000")
    try:
        ref, uid = onboard_with_a_key(rig, "elim-off")
        ev = events_for("elim-off", funding=())
        a1 = topup("elim-off", "topup-a1", 3, [("USDT", "600")])
        a2 = topup("elim-off", "topup-a2", 4, [("USDT", "600")])
        rig.publish(a1)
        rig.settle(ref)
        rig.publish(a2, ev["offboard"])  # asked for as the customer leaves: never to be funded
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["600"]
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["elim-off-topup-a2#0"]
        heard = outbound(rig.app)
        order_a1 = paid_to(rig, uid)[0]["orderId"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"], ev["offboard"], a2])
            settle_with(rig, app, ref)
            declare_republished(app, stamps_kept=True)  # early: A1 is still in the upstream's queue
            settle_with(rig, app, ref)
            rig.clock.advance_ms(10 * 60_000)
            redeliver(app, [a1])
            settle_with(rig, app, ref)

            told = {e["key"]: e.get("order_id") for e in heard + outbound(app) if e["type"] == "funding.completed"}
            assert "elim-off-topup-a2#0" not in told, (
                f"A2 (refused at offboarding before the loss) told funding.completed under order "
                f"{told.get('elim-off-topup-a2#0')} (A1's is {order_a1})"
            )
        finally:
            app.close()
    finally:
        rig.close()
