"""c8a3458 (adv4 break 6) blocks a line asked for after the recovery whose look-for finds *one* transfer to the
sub-account that no line we hold explains: likely a pre-loss line not re-published yet, which the cap must count.
With *two* such transfers of the amount the judgement is UNDECIDED instead of COMMITTED, and
``ask_if_undecided=False`` sends the line: the protection vanishes exactly when more money is unaccounted for.
The send is then searched for a second payment over the same month, which counts the unexplained pre-loss
transfers as this line's doubles and distrusts the exchange for every customer."""

from __future__ import annotations

import shutil
from decimal import Decimal

from tests.adversarial.helpers import onboard_with_a_key, paid_to, topup, total
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import recover
from worker.store.outbound import rfc3339


def test_two_unexplained_pre_loss_payments_let_a_live_line_past_the_cap(redis_url: str, key_prefix: str) -> None:
    """Scenario: per-customer cap 1000 USDT (default ledger: entries name the orderId; repeats deduplicated).
    Top-ups A1 and A2 (400 USDT each) are paid. Redis loses everything; ``provisioner recover`` without
    ``--heard``. The upstream starts re-publishing (creation, approval; the record is audited). Ten minutes
    later, before the re-publication reaches A1 and A2, the customer asks for top-up B (400 USDT, live). The
    re-publication of A1 and A2 arrives an hour later.

    What happens: B's look-for (from the sub-account's creation, 400 USDT) finds two transfers to the sub-account
    no line explains: ``judge_by_ledger`` says UNDECIDED ("cannot tell which is ours"), not COMMITTED, so the
    c8a3458 block does not apply; ``ask_if_undecided=False`` sends B against ``funded() == 0``: 400 more. B's
    recheck then counts A1's and A2's transfers as B's second payments: "paid more than once … the exchange
    contradicted the settings", and the exchange is distrusted for every customer (``provisioner state trust``
    needed). A1 and A2 are then found: 1200 USDT paid, cap 1000.

    Why it is wrong: the caps hold after a loss, and ordinary operation must not raise a false double-payment
    alarm that degrades every worker. A look-for that finds *more* unexplained money to the sub-account must be at
    least as cautious as one that finds one transfer (block for the re-publication / an operator), and a
    month-wide recheck of a new line must not attribute other lines' payments to it."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "two-unexplained")
        ev = events_for("two-unexplained", funding=())
        a1 = topup("two-unexplained", "topup-a1", 5, [("USDT", "400")])
        a2 = topup("two-unexplained", "topup-a2", 6, [("USDT", "400")])
        rig.publish(a1, a2)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["400", "400"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")  # no --heard
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)

            rig.clock.advance_ms(10 * 60_000)
            now = rfc3339(int(rig.clock() * 1000))
            b = {**topup("two-unexplained", "topup-b", 0, [("USDT", "400")]), "occurred_at": now}
            assert isinstance(app.intake.accept(b), Accepted)
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)
            redeliver(app, [a1, a2])  # the re-publication reaches A1 and A2
            for _ in range(2):
                rig.clock.advance_ms(3_600_000)
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)

            paid = total(paid_to(rig, uid))
            distrust = app.store.guard.distrust_reason()
            assert paid <= Decimal(1000) and distrust is None, (
                f"paid {paid} USDT to a customer capped at 1000; exchange distrusted: {(distrust or '')[:200]}"
            )
        finally:
            app.close()
    finally:
        rig.close()
