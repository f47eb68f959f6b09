"""c05fc24: for a month after a recovery every new funding line is looked for from 30 days back; where the ledger
cannot tell (``ask_if_undecided=False``) the line is sent and ``earlier_sends`` makes its send searched for a
second payment over the same 30 days. On a ledger whose entries carry no ids (``ledger_context`` ``none``) any
other customer's transfer of the same amount in that month makes the look-for UNDECIDED, and the recheck can
then never count: every such ordinary top-up is flagged "cannot verify" for an operator."""

from __future__ import annotations

import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import declare_republished, recover
from worker.store.outbound import rfc3339


def test_a_new_top_up_after_recovery_is_flagged_for_another_customers_payment(redis_url: str, key_prefix: str) -> None:
    """Scenario: the exchange's ledger entries carry no orderId/clientOid (``ledger_context: none``); it
    deduplicates a repeated clientOid (the default). Customers X and Y are onboarded; Y's 100 USDT top-up is paid.
    Redis loses everything; ``provisioner recover`` (no ``--heard``). X's creation and approval are re-published
    and X is audited (X had never been funded). Ten minutes later X asks for a 100 USDT top-up — a live event,
    occurring now, its key never seen before.

    What happens: X's line is looked for in the ledger from 30 days back (``RECOVERY_LOOK_MS``): Y's 100 USDT entry
    carries no id, so UNDECIDED; ``ask_if_undecided=False`` sends the line (paid once, correctly) but records
    ``earlier_sends`` from 30 days back; the recheck reads Y's (and X's own) anonymous entries,
    ``count_second_payments`` returns ``None`` and X gets a ``double:`` block: "the ledger cannot tell whether 100
    USDT was paid twice … check the sub-account's transfers with KuCoin". Every top-up after a recovery whose
    amount anyone got in the month is flagged so, for 31 days.

    Why it is wrong: an ordinary top-up, asked for after the recovery and paid exactly once, must not ask an
    operator. Before c05fc24 such a line was just sent, unflagged; the look-for meant to catch a re-stamped old
    line cannot attribute another sub-account's anonymous entry to this line (X had no line before the loss at
    all), so the recheck's "cannot tell" is noise that operators will learn to ignore."""
    config = SandboxConfig.from_dict({"ledger_context": "none"})
    rig = Rig(redis_url, key_prefix, config=config)
    try:
        ref_y, uid_y = onboard_with_a_key(rig, "anon-y")
        rig.publish(topup("anon-y", "topup", 5, [("USDT", "100")]))
        rig.settle(ref_y)
        assert [t["amount"] for t in paid_to(rig, uid_y)] == ["100"]
        ref_x, uid_x = onboard_with_a_key(rig, "anon-x")
        ev_x = events_for("anon-x", funding=())

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref_x = redeliver(app, [ev_x["created"], ev_x["kyc"]])
            settle_with(rig, app, ref_x)
            declare_republished(app)  # the on-call, once the upstream says it has re-published everything

            rig.clock.advance_ms(10 * 60_000)
            now = rfc3339(int(rig.clock() * 1000))
            live = {**topup("anon-x", "topup-live", 0, [("USDT", "100")]), "occurred_at": now}
            assert isinstance(app.intake.accept(live), Accepted)
            settle_with(rig, app, ref_x)
            for _ in range(3):
                rig.clock.advance_ms(3_600_000)
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)

            assert [t["amount"] for t in paid_to(rig, uid_x)] == ["100"]  # paid exactly once
            record = app.store.load(ref_x)
            assert record is not None
            blocks = {step: b.reason[:160] for step, b in record.blocked.items()}
            assert not blocks, f"an ordinary top-up paid once was flagged for an operator: {blocks}"
        finally:
            app.close()
    finally:
        rig.close()
