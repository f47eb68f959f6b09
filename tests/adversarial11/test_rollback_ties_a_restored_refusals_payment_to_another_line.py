"""7e048f4 looks for a restored redecidable refusal (the line may have been retried and paid after the snapshot),
but only for that line: every other search still treats the refusal as settled. ``_twins`` counts only lines "not in
``record.transfers``" and ``_ledger_rows`` only lines in doubt, so a search for another line of the same currency
and amount does not know the restored refusal may own a transfer: the ledger's transfer is tied to the wrong line.

Scenario: ``dedupe``, default ledger (orderIds in its context, no clientOid), per-customer cap 1000 USDT. Customer X
is paid 900 (line P, minute 4). X asks for a 600 USDT top-up R (minute 6): refused by the per-customer cap
(``funding.refused``). Redis is snapshotted here. The on-call raises the per-customer cap to 5000 and runs
``provisioner customer retry`` (the documented remedy): R is re-decided and paid 600; the upstream hears
``funding.completed`` for R. Redis is restored from the snapshot; ``provisioner recover`` (no ``--heard``); the
upstream re-publishes X's events — among them a 600 USDT top-up L stamped minute 5 (between P and R) that never
reached us before (re-ordered, late delivery) — and the on-call declares the re-publication.

What happens: after the loss every line is looked for before the caps decide, in the order of the desired state: L
(minute 5) first. L's search counts no twin (R is "recorded": refused) and no sibling in doubt, the ledger shows one
600 transfer to X's sub-account that no line we know explains (R's, paid after the snapshot), so it is tied to L by
elimination; neither cap could have refused L for it (5000 per customer, the day far from its cap), so L is
recorded paid and the upstream is told ``funding.completed`` for L with R's order. R's search then finds that order
known (L's) and R's refusal stands. L was never paid: the upstream was told 2100 USDT reached X (P, R, L), the
exchange moved 1500; X will never get L's 600, and X's record says R was refused though it was paid.

Why it is wrong: README "What the exchange leaves undecidable": a transfer is tied to a line by elimination only
when no line we know explains it; R is a line we know and, by 7e048f4's own rule, one that may have been paid after
the snapshot. The upstream hears a wrong ``funding.completed`` (README: "funding.completed (the exchange's record
shows the transfer)").

Suggested fix: count a restored redecidable refusal not yet looked for (``_unsettled_or_restored`` and not
``_looked``) as a twin of the lines of its currency and amount in ``_twins`` (the search then cannot tell and an
operator decides), or look for restored refusals before any unrecorded line (they are the lines a retry may have
paid; a transfer found for one is then known when the others are searched).

How likely: needs a cap refusal retried after the snapshot (the documented fix once the cap is raised), a rollback
(restore from backup, async failover) recovered without ``--heard``, a ledger without clientOids (KuCoin's default
context) and a same-amount line of the customer delivered late, stamped before the refused one. Rare, but the
verdict is silently wrong and the customer silently short.
"""

from __future__ import annotations

from decimal import Decimal

from tests.adversarial.helpers import (
    onboard_with_a_key,
    outbound_of,
    paid_to,
    restore_state,
    snapshot_state,
    topup,
    total,
)
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.bootstrap import build_app
from worker.recovery import declare_republished, recover


def test_a_rollback_ties_a_restored_refusals_payment_to_a_late_line(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe")
    try:
        ref, uid = onboard_with_a_key(rig, "rb-twin-x")
        line_p = topup("rb-twin-x", "topup-p", 4, [("USDT", "900")])
        line_r = topup("rb-twin-x", "topup-r", 6, [("USDT", "600")])
        line_l = topup("rb-twin-x", "topup-l", 5, [("USDT", "600")])  # stamped before R, reaches us only later
        rig.publish(line_p)
        rig.settle(ref)
        rig.publish(line_r)
        rig.settle(ref)
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["rb-twin-x-topup-r#0"]

        snapshot = snapshot_state(rig)
        raised = rig.settings.model_copy(
            update={"funding_cap_per_customer": {**rig.settings.funding_cap_per_customer, "USDT": Decimal(5000)}}
        )
        rig.app.close()
        rig.settings = raised  # the raised cap stays: the host after the rollback runs with it too
        rig.app = build_app(raised, transport=rig.transport, clock=rig.clock)
        rig.run(ref, retry_blocked=True)  # `provisioner customer retry` once the cap was raised: R is re-decided
        rig.settle(ref)
        assert sorted(t["amount"] for t in paid_to(rig, uid)) == ["600", "900"]
        heard = outbound_of(rig, "funding.completed")
        assert sorted(e["key"] for e in heard) == ["rb-twin-x-topup-p#0", "rb-twin-x-topup-r#0"]
        rig.app.state.check()

        restore_state(rig, snapshot)  # restored from the older snapshot
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot")
            assert report.detected.startswith("rolled_back"), report
            ev = events_for("rb-twin-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line_p, line_r, line_l])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            for _ in range(3):
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)
                rig.clock.advance_ms(600_000)
            known = {h["key"] for h in heard}
            told = heard + [e for e in outbound_of(app, "funding.completed") if e["key"] not in known]
            told_paid = sum((Decimal(e["amount"]) for e in told), Decimal(0))
            moved = total(paid_to(rig, uid))
            record = app.store.load(ref)
            lines = {k: (t.status.value, t.order_id) for k, t in record.transfers.items()} if record else {}
            assert told_paid <= moved, (
                f"the upstream was told {told_paid} USDT reached X ({sorted(e['key'] for e in told)}), the exchange "
                f"moved {moved}; X's record: {lines}"
            )
        finally:
            app.close()
    finally:
        rig.close()
