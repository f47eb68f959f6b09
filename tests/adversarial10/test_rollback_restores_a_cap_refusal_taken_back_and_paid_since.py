"""648076a: "after a loss, what a restored snapshot says an attempt did is no evidence for the line" — it drops a
restored funding intent and restored funding blocks, and a restored accepted attempt that reads FAILURE no longer
blocks the line. A restored *refusal by a cap* is the same kind of statement and stays: such a refusal is taken
back by design (``provisioner customer retry`` re-decides it once the cap has room: ``handlers.refusals``), so the
line may have been paid after the snapshot. The restored record says "refused, nothing moved", the line is never
looked for, and its payment is missing from the per-customer cap.

Scenario: ``dedupe``, default ledger (orderIds in its context), per-customer cap 1000 USDT, the Special Account's
daily cap 1000 USDT. Day D: customer W is paid 900; customer X (a key, nothing funded) asks for 600 USDT (line A):
refused by the daily cap (``funding.refused``). Redis is snapshotted here. Day D+1: the on-call runs ``provisioner
customer retry`` for X (the documented fix, "the next UTC day fixes" a daily-cap refusal): A is re-decided and paid
600; the upstream hears ``funding.completed``. Redis is restored from the snapshot; ``provisioner recover`` (no
``--heard``); X's events are re-published and the on-call declares it. Day D+2: X asks for a 600 USDT top-up (B).

What happens: the audit keeps A's restored refusal (``_after_loss`` drops only a pending funding intent and funding
blocks). A is recorded, so it is not looked for in the ledger; the per-customer cap sees nothing funded for X
(0 + 600 <= 1000) and sends B. X holds 1200 USDT, cap 1000; X's record says A was refused while the exchange paid it
and the upstream was told it completed. No block is raised for it.

Why it is wrong: README guarantee 6 (no sequence of verdicts can exceed a cap) and 648076a's own rule — a restored
snapshot's account of a line is no evidence once the line could have gone on after it; a redecidable refusal is the
one verdict the design itself takes back. ``--heard`` with A's ``funding.completed`` would save it, but the fixes of
adv9 (9e5a9df, 648076a) treat a recovery without ``--heard`` as one that must still hold the caps.

Suggested fix: in ``_after_loss``, treat a refusal of a redecidable cause (``handlers.refusals.refusal_cause`` in
``REDECIDABLE``, ``at_ms`` before the loss) like a restored block: look for the line under every clientOid it may
have used after the refusal (the retry raises ``retry_counts``/``redecided``) before any later line of the currency
is decided, and count it in doubt until then; if the ledger shows nothing of it, keep the refusal (no new event).

How likely: a daily-cap refusal is everyday in a campaign, and ``customer retry`` the next day is the documented
remedy; it then takes a rollback to a snapshot older than that retry (RDB/backup restore, an async failover) and a
recovery without ``--heard``: rare, but silent and it moves money past a cap.
"""

from __future__ import annotations

from decimal import Decimal

from tests.adversarial.helpers import (
    onboard_with_a_key,
    outbound_of,
    paid_to,
    restore_state,
    snapshot_state,
    stamped_now,
    topup,
)
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


def test_a_rollback_restores_a_cap_refusal_that_a_retry_took_back_and_paid(redis_url: str, key_prefix: str) -> None:
    rig = Rig(
        redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe", PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000"
    )
    try:
        ref_w, uid_w = onboard_with_a_key(rig, "rb-cap-w")
        rig.publish(topup("rb-cap-w", "t", 4, [("USDT", "900")]))
        rig.settle(ref_w)
        assert [t["amount"] for t in paid_to(rig, uid_w)] == ["900"]
        ref_x, uid_x = onboard_with_a_key(rig, "rb-cap-x")
        line_a = topup("rb-cap-x", "topup-a", 5, [("USDT", "600")])
        rig.publish(line_a)
        rig.settle(ref_x)
        refused = outbound_of(rig, "funding.refused")
        assert [(e["key"], e["reason"][:34]) for e in refused] == [
            ("rb-cap-x-topup-a#0", "the Special Account's daily cap of")
        ]

        snapshot = snapshot_state(rig)
        rig.clock.advance_ms(DAY_MS)  # the next UTC day: the daily cap has room again
        rig.run(ref_x, retry_blocked=True)  # `provisioner customer retry`: A is re-decided
        rig.settle(ref_x)
        assert [t["amount"] for t in paid_to(rig, uid_x)] == ["600"]
        assert "rb-cap-x-topup-a#0" in [e["key"] for e in outbound_of(rig, "funding.completed")]
        rig.app.state.check()  # the host's mirror holds the newer write count

        restore_state(rig, snapshot)  # restored from the older snapshot
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot")
            assert report.detected.startswith("rolled_back"), report
            ev = events_for("rb-cap-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line_a])
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(DAY_MS)  # day D+2: the daily cap is not what stops B
            assert isinstance(app.intake.accept(stamped_now(rig, "rb-cap-x", "topup-b", [("USDT", "600")])), Accepted)
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            paid = sum((Decimal(t["amount"]) for t in paid_to(rig, uid_x)), Decimal(0))
            record = app.store.load(ref_x)
            lines = {k: (t.status.value, (t.note or "")[:40]) for k, t in record.transfers.items()}
            assert paid <= Decimal(1000), f"X was paid {paid} USDT, per-customer cap 1000; X's record: {lines}"
        finally:
            app.close()
    finally:
        rig.close()
