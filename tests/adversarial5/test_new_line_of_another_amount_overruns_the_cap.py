"""c05fc24/c8a3458 answer adv4 break 3 (a live top-up paid on a cap that knows nothing of the lines paid before the
loss) with a look-for of the new line *by its own amount*: a transfer of that amount the record cannot explain
blocks the line for an operator. A pre-loss payment of any other amount is invisible to that search, so a live
top-up of a different amount is still decided against ``funded() == 0`` and paid past the per-customer cap."""

from __future__ import annotations

import shutil
from decimal import Decimal

from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, topup, total, violations_after
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import recover
from worker.store.outbound import rfc3339


def test_a_live_top_up_of_another_amount_overruns_the_per_customer_cap(redis_url: str, key_prefix: str) -> None:
    """Scenario: per-customer cap 1000 USDT. Top-up A (600 USDT) is paid. Redis loses everything; ``provisioner
    recover`` without ``--heard`` (the documented safe default). The upstream starts re-publishing (creation and
    approval; the record is audited). Ten minutes later, before the re-publication reaches A, the customer asks
    for top-up B of 500 USDT (a live event). Then A is re-published. (adv4's test of the same scenario uses B =
    600, the amount of A — the only case the fix covers.)

    What happens: B is looked for from the sub-account's creation, but only for transfers of 500 USDT: none, so
    NOT_COMMITTED, recorded looked-for, and decided against the cap with ``funded() == 0``: paid. A is then
    looked for, found and recorded: 1100 USDT paid to a customer capped at 1000; ``verify``: "none above the
    caps".

    Why it is wrong: the caps hold after a loss. What the exchange shows paid to the sub-account (of any amount)
    is what the lost state had counted; a search restricted to the new line's amount sees it only by coincidence.
    A new line after a recovery without heard outcomes must be decided against every transfer to the sub-account
    the record cannot explain (or wait for the re-publication / an operator)."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "other-amount")
        ev = events_for("other-amount", funding=())
        a = topup("other-amount", "topup-a", 5, [("USDT", "600")])
        rig.publish(a)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["600"]
        heard = outbound(rig.app)

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")  # no --heard
            ref = redeliver(app, [ev["created"], ev["kyc"]])  # the re-publication has begun
            settle_with(rig, app, ref)

            rig.clock.advance_ms(10 * 60_000)
            now = rfc3339(int(rig.clock() * 1000))
            b = {**topup("other-amount", "topup-b", 0, [("USDT", "500")]), "occurred_at": now}
            assert isinstance(app.intake.accept(b), Accepted)
            settle_with(rig, app, ref)
            redeliver(app, [a])  # the re-publication reaches A
            rig.clock.advance_ms(3_600_000)
            app.due.schedule(ref, int(rig.clock() * 1000))
            settle_with(rig, app, ref)

            published = [ev["created"], ev["kyc"], a, b]
            violations = violations_after(rig, app, published, heard)
            paid = total(paid_to(rig, uid))
            caps = [f"{v.invariant}: {v.detail}" for v in violations if v.invariant == "none above the caps"]
            assert paid <= Decimal(1000) and not caps, f"paid {paid} USDT to a customer capped at 1000: {caps}"
        finally:
            app.close()
    finally:
        rig.close()
