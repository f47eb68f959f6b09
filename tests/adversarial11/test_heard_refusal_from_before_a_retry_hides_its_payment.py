"""``recover --heard`` records what the upstream heard of a line over what a restored snapshot holds of it when the
snapshot holds "a transfer whose final status it never read" (``audit_steps._heard_decides``: an ACCEPTED entry).
A line refused by a cap and then taken back by ``provisioner customer retry`` has two verdicts in its life: the first
refusal, which the upstream heard, and the retry's transfer. The heard refusal is the older of the two, yet it
replaces the restored transfer: the line is recorded refused (cause OTHER, never looked for — 7e048f4 looks only for
a restored *redecidable* refusal) while its transfer executed.

Scenario: ``dedupe``, default ledger, per-customer cap 1000 USDT, the Special Account's daily cap 1000 USDT. Day D:
customer W is paid 900; customer X (a key, nothing funded) asks for 600 USDT (line A): refused by the daily cap
(``funding.refused``, delivered). Day D+1: the on-call runs ``customer retry`` for X; A is re-decided and sent, the
exchange accepts it (its final status not read yet). Redis is snapshotted here. The transfer executes, A is recorded
paid and ``funding.completed`` is queued — not yet delivered when Redis is restored from the snapshot (a backlog is
what the rollback loses). ``provisioner recover --heard received.jsonl`` with the events the upstream received (A's
``funding.refused``). X's events are re-published and the on-call declares it. Day D+2: X asks for a 600 top-up B.

What happens: the audit seeds the heard refusal over A's restored ACCEPTED entry (REFUSED, ``client_oid`` None,
note "refused before our state was lost, as the upstream heard"; ``at_ms`` = the audit's time). A is neither looked
for nor confirmed; its 600 is missing from the per-customer cap, B is sent: X holds 1200 USDT, cap 1000. The upstream
is never told A completed (the queued event was lost; its record says refused).

Why it is wrong: README guarantee 6 (no sequence of verdicts exceeds a cap) and the recovery's own rule that a
restored snapshot's account of a line is no evidence after the loss — here it is the one piece of evidence that the
line went on after the heard refusal, and it is thrown away. README: ``--heard`` records "a completion committed
(never sent again), a refusal refused (never sent)" — a refusal that a later send superseded is not the line's
outcome.

Suggested fix: in ``_heard_decides``, a heard refusal does not replace a held ACCEPTED (or any sent) entry whose
``at_ms``/``sent_ms`` is later than the heard event's ``occurred_at`` (or whose line was redecided: the refusal's
identity ``<key>`` is older than ``redecided``); keep the entry and confirm it (or drop it and look for the line under
every clientOid, as ``_failed`` does for a restored attempt).

How likely: a daily-cap refusal retried the next day is the documented routine; the snapshot must fall between the
retry's send and its confirmation (seconds to minutes; KuCoin's transfers can stay PROCESSING longer), and the
rollback must lose the completion before delivery. Rare, silent, and it moves money past a cap.
"""

from __future__ import annotations

from decimal import Decimal

from handlers.records import TransferStatus
from tests.adversarial.helpers import (
    onboard_with_a_key,
    outbound,
    paid_to,
    restore_state,
    snapshot_state,
    stamped_now,
    topup,
)
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.intake import Accepted
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


def test_a_heard_refusal_replaces_a_restored_retry_that_was_paid(redis_url: str, key_prefix: str) -> None:
    rig = Rig(
        redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe", PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000"
    )
    try:
        ref_w, _uid_w = onboard_with_a_key(rig, "hr-w")
        rig.publish(topup("hr-w", "t", 4, [("USDT", "900")]))
        rig.settle(ref_w)
        ref_x, uid_x = onboard_with_a_key(rig, "hr-x")
        line_a = topup("hr-x", "topup-a", 5, [("USDT", "600")])
        rig.publish(line_a)
        rig.settle(ref_x)
        received = [e for e in outbound(rig) if e["type"] in ("funding.completed", "funding.refused")]
        assert [(e["type"], e["key"]) for e in received if e["key"].startswith("hr-x")] == [
            ("funding.refused", "hr-x-topup-a#0")
        ]

        rig.clock.advance_ms(DAY_MS)  # the next UTC day: the daily cap has room again
        rig.exchange.update_config({"transfer_processing_ms": 20_000})  # the transfer reads PROCESSING for a while
        rig.run(ref_x, retry_blocked=True)  # `provisioner customer retry`: A is re-decided and sent
        held = rig.record(ref_x).transfers["hr-x-topup-a#0"]
        assert held.status is TransferStatus.ACCEPTED, held
        snapshot = snapshot_state(rig)
        rig.settle(ref_x)
        assert [t["amount"] for t in paid_to(rig, uid_x)] == ["600"]
        assert rig.record(ref_x).transfers["hr-x-topup-a#0"].status is TransferStatus.COMMITTED
        rig.app.state.check()

        restore_state(rig, snapshot)  # restored; A's completion undelivered
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot", heard=outcomes_from_events(received))
            assert report.detected.startswith("rolled_back"), report
            ev = events_for("hr-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line_a])
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(DAY_MS)  # day D+2: the daily cap is not what stops B
            assert isinstance(app.intake.accept(stamped_now(rig, "hr-x", "topup-b", [("USDT", "600")])), Accepted)
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            paid = sum((Decimal(t["amount"]) for t in paid_to(rig, uid_x)), Decimal(0))
            record = app.store.load(ref_x)
            lines = {k: (t.status.value, (t.note or "")[:50]) for k, t in record.transfers.items()} if record else {}
            assert paid <= Decimal(1000), f"X was paid {paid} USDT, per-customer cap 1000; X's record: {lines}"
        finally:
            app.close()
    finally:
        rig.close()


def test_a_heard_refusal_hides_a_retry_paid_before_a_full_loss(redis_url: str, key_prefix: str) -> None:
    """The same stale refusal without a rollback: Redis loses everything (a restart without persistence) after A's
    retry was paid and before its ``funding.completed`` was delivered. The record is gone, ``--heard`` holds only A's
    first refusal, and ``_seed_heard`` records A refused (a line it "does not hold"): A is never looked for, although
    the ledger shows its transfer under its clientOid's orderId. B passes the per-customer cap (1200 of 1000).
    More likely than the rollback form: every Redis loss loses the delivery backlog, and a retry's completion is
    the last thing queued for the customer. Fix as above: a heard refusal is evidence only that the line was
    refused once; after a loss the line is still looked for (found paid, it is completed; found nothing, the
    heard refusal stands)."""
    rig = Rig(
        redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe", PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000"
    )
    try:
        ref_w, _uid_w = onboard_with_a_key(rig, "hl-w")
        rig.publish(topup("hl-w", "t", 4, [("USDT", "900")]))
        rig.settle(ref_w)
        ref_x, uid_x = onboard_with_a_key(rig, "hl-x")
        line_a = topup("hl-x", "topup-a", 5, [("USDT", "600")])
        rig.publish(line_a)
        rig.settle(ref_x)
        received = [e for e in outbound(rig) if e["type"] in ("funding.completed", "funding.refused")]
        rig.clock.advance_ms(DAY_MS)
        rig.run(ref_x, retry_blocked=True)  # `provisioner customer retry`: A is re-decided and paid
        rig.settle(ref_x)
        assert [t["amount"] for t in paid_to(rig, uid_x)] == ["600"]
        assert rig.record(ref_x).transfers["hl-x-topup-a#0"].status is TransferStatus.COMMITTED

        lose_everything(rig)  # A's funding.completed was still queued for delivery: lost with it
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: Redis lost everything", heard=outcomes_from_events(received))
            assert report.detected != "ok", report
            ev = events_for("hl-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line_a])
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(DAY_MS)
            assert isinstance(app.intake.accept(stamped_now(rig, "hl-x", "topup-b", [("USDT", "600")])), Accepted)
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            paid = sum((Decimal(t["amount"]) for t in paid_to(rig, uid_x)), Decimal(0))
            record = app.store.load(ref_x)
            lines = {k: (t.status.value, (t.note or "")[:50]) for k, t in record.transfers.items()} if record else {}
            assert paid <= Decimal(1000), f"X was paid {paid} USDT, per-customer cap 1000; X's record: {lines}"
        finally:
            app.close()
    finally:
        rig.close()
