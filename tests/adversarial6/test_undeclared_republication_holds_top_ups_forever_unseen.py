"""8b75a05: until the on-call declares the re-publication complete, a line stamped after the loss "waits — nothing
sent, no operator asked". Nothing bounds that wait or shows it: no block, no ``provisioning.failed``, no metric or
alert says a recovery is open and undeclared, the customer view shows the line ``pending`` with no reason, and
the customer is due again only when its key is old enough to rotate (90 days), to be held again. When the
declaration is forgotten — the runbook's last step, after the ``StateLost`` page has resolved — every recovered
customer's top-ups wait forever and no one is told."""

from __future__ import annotations

import shutil

from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.customer_view import read_customer_view
from worker.intake import Accepted
from worker.recovery import recover
from worker.store.outbound import rfc3339

DAY_MS = 86_400_000


def test_a_top_up_a_week_after_an_undeclared_recovery_waits_forever_and_no_one_is_told(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: default exchange. A customer is onboarded and funded (250 USDT). Redis loses everything;
    ``provisioner recover`` (no ``--heard``); the upstream re-publishes every event and the customer is audited and
    recovered (nothing sent; the re-published top-up, whose ledger entry names only its orderId, waits for the
    declaration too). The on-call never runs ``provisioner recover --republished`` (the upstream
    team did not say it was done; the page had resolved). A week later the customer asks for a 100 USDT top-up.

    What happens: the line is stamped after the loss and the re-publication is not declared, so
    ``_awaits_republication`` holds it: the run is idle ("waits until the upstream's re-publication … is declared
    complete"), wakes only for the key's rotation, blocks nothing. Checked a week and then a month later: nothing
    sent, no block, no ``provisioning.failed`` to the upstream, ``provisioner_customers_blocked`` counts nothing,
    the customer view says ``pending`` with no reason; no gauge says a recovery is awaiting its declaration. The
    only trace is one log line when the top-up was worked.

    Why it is wrong: "blocked is never silent" (README, principle 7). A line the worker will not decide without
    an operator's action is, for the customer, blocked: the wait needs a signal an operator sees (a gauge and an
    alert on an open, undeclared recovery; or the line shown waiting with its reason), or a bound after which it
    goes to an operator — not an indefinite silent hold."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "forgotten")
        ev = events_for("forgotten", funding=())
        a = topup("forgotten", "topup-a", 5, [("USDT", "250")])
        rig.publish(a)
        rig.settle(ref)

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"], a])  # the whole re-publication
            settle_with(rig, app, ref)
            record = app.store.load(ref)
            # on this ledger (entries name the orderId only) even A's own transfer is tied to it by elimination:
            # A waits for the declaration too, unrecorded
            assert record is not None and record.awaiting_republication == ("forgotten-topup-a#0",)
            assert not record.blocked and not record.transfers

            rig.clock.advance_ms(7 * DAY_MS)
            b = {**topup("forgotten", "topup-b", 0, [("USDT", "100")]), "occurred_at": rfc3339(int(rig.clock() * 1000))}
            assert isinstance(app.intake.accept(b), Accepted)
            settle_with(rig, app, ref)
            rig.clock.advance_ms(30 * DAY_MS)
            settle_with(rig, app, ref)

            record = app.store.load(ref)
            assert record is not None
            view = read_customer_view(app.store, app.policy.naming, "forgotten")
            assert view is not None
            (line,) = [f for f in view.funding if f.line == "forgotten-topup-b#0"]
            blocked_gauge = int(app.redis.zcard(app.keys.blocked))
            failed = [e["step"] for e in outbound_of(app, "provisioning.failed")]
            decided = "forgotten-topup-b#0" in record.transfers
            assert decided or record.blocked or line.reason is not None, (
                f"37 days after the recovery the 100 USDT top-up is {line.state.value} (reason {line.reason!r}): "
                f"paid {[t['amount'] for t in paid_to(rig, uid)]}, blocks {sorted(record.blocked)}, customers blocked "
                f"{blocked_gauge}, provisioning.failed {failed}, next due {app.due.next_due_ms(ref)}"
            )
        finally:
            app.close()
    finally:
        rig.close()
