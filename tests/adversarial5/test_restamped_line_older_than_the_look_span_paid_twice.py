"""c05fc24 (adv4 break 4): for a month after a recovery a new line is looked for first, "whatever its occurred_at
says (a re-published line may carry a new one)" — but only ``LOOK_SPAN_MS`` (30 days) back from *now*, and where
the ledger shows nothing there it is sent as new. A line paid a few weeks before the loss and re-published (re-
stamped) a few days after the recovery had its transfer more than 30 days before the look-for: not seen, and
paid again. A line re-published with its true ``occurred_at`` would instead go to an operator ("too long ago to
search"): the re-stamp still dodges the safeguard."""

from __future__ import annotations

import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import recover
from worker.store.outbound import rfc3339


def test_a_restamped_line_paid_29_days_before_the_loss_is_paid_again(redis_url: str, key_prefix: str) -> None:
    """Scenario: adv4's re-stamp scenario (exchange ``accept``: a repeated clientOid makes a new transfer; the
    worker is configured ``unknown``; ledger entries name the clientOid), with time in it. A 250 USDT top-up is
    paid. 29 days later Redis loses everything; ``provisioner recover`` (no ``--heard``). The customer's creation
    and approval are re-published and worked; two days later the re-publication reaches the top-up — same event
    id, same line — stamped with the time it is re-published.

    What happens: the line is "asked for after the recovery", within ``RECOVERY_LOOK_MS``, so it is looked for —
    from ``now - LOOK_SPAN_MS`` (30 days back), while its payment was 31 days ago: NOT_COMMITTED, recorded
    looked-for, sent under attempt 0's clientOid (the one already paid); the exchange executes it again: two
    250 USDT transfers for one line, nothing flagged.

    Why it is wrong: exactly-once after a loss and under duplicated events. The look-for that closes the re-stamp
    hole must cover every moment the line may have been paid — back to the sub-account's creation, or as far as
    the ledger can be searched and otherwise "cannot tell" (an operator), as a line with its true ``occurred_at``
    is treated — not a window anchored on the re-publication's clock."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "client_oid"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "old-restamp")
        ev = events_for("old-restamp", funding=())
        original = topup("old-restamp", "topup", 5, [("USDT", "250")])
        rig.publish(original)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["250"]

        rig.clock.advance_ms(29 * 86_400_000)
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")  # no --heard: the safe default
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)

            rig.clock.advance_ms(2 * 86_400_000)
            restamped = {**original, "occurred_at": rfc3339(int(rig.clock() * 1000))}
            assert isinstance(app.intake.accept(restamped), Accepted)
            settle_with(rig, app, ref)
            for _ in range(2):
                rig.clock.advance_ms(3_600_000)
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)

            paid = paid_to(rig, uid)
            record = app.store.load(ref)
            assert record is not None
            flagged = {s: b.reason[:120] for s, b in record.blocked.items() if b.manual or s.startswith("double:")}
            assert len(paid) == 1 or flagged, f"line old-restamp-topup#0 paid {len(paid)} times, nothing flagged"
        finally:
            app.close()
    finally:
        rig.close()
