"""7e048f4 looks for a restored redecidable refusal (the line may have been retried and paid after the snapshot) in
``_funding`` only. An offboarded customer never reaches ``_funding``: ``_offboard`` (and ``_late_lines`` once closed)
takes every line in ``record.transfers`` as settled, so a restored refusal is never looked for there. The line's
payment is swept back with the rest, and the upstream, whose ``funding.completed`` for it was lost with the rolled
back Redis, keeps the refusal as the line's verdict.

Scenario: ``dedupe``, default ledger, per-customer cap 1000 USDT, the Special Account's daily cap 1000 USDT. Day D:
customer W is paid 900; customer X (a key, nothing funded) asks for 600 USDT (line A): refused by the daily cap
(``funding.refused``, delivered). Redis is snapshotted. Day D+1: ``provisioner customer retry`` for X: A is paid
600 and ``funding.completed`` is queued. Redis is restored from the snapshot before the completion was delivered;
``provisioner recover`` (no ``--heard``); X's events are re-published, with X's request to be offboarded
(``customer.offboarded``, stamped D+1), and the on-call declares the re-publication.

What happens: the audit keeps A's restored refusal; ``_offboard`` revokes X's key, refuses nothing (A is "recorded"),
reads the balances (600 USDT: A's payment), moves them back and closes X. No ``funding.completed`` for A is ever
emitted: the upstream's last word on A is ``funding.refused`` while the exchange paid X 600 USDT (which X held, and
could trade, for a day) before it was swept back. X's record says A was refused.

Why it is wrong: README, outbound events: ``funding.completed`` when "the exchange's record shows the transfer";
and 7e048f4's rule (README guarantee 8: a cap's refusal a retry takes back is looked for after a loss) — the
offboarding path skips it. Without offboarding the same line is looked for (and found, or put to an operator).

Suggested fix: in ``_offboard`` and ``_late_lines``, treat a line for which ``_unsettled_or_restored`` holds (a
restored redecidable refusal not yet ``_looked``) like a maybe-lost line: look for it (``_look_for``) before the
sweep; found, it is completed (its money is then swept back like any paid line's); found nothing, the refusal
stands.

How likely: needs a retried cap refusal, a rollback that loses its undelivered completion and an offboarding after
the retry; rare. The money is not lost (it is swept back), but the upstream's books say the customer never got it.

Since the fix the offboarding looks the refusal up; the ledger names orderIds only, so the transfer is tied to A by
elimination and an operator is asked (shown the order); the on-call's verdict tells the upstream."""

from __future__ import annotations

from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, restore_state, snapshot_state, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.provisioning.operator import settle_transfer
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


def test_offboarding_after_a_rollback_never_tells_a_retried_refusal_paid(redis_url: str, key_prefix: str) -> None:
    rig = Rig(
        redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe", PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000"
    )
    try:
        ref_w, _uid_w = onboard_with_a_key(rig, "ob-w")
        rig.publish(topup("ob-w", "t", 4, [("USDT", "900")]))
        rig.settle(ref_w)
        ref_x, uid_x = onboard_with_a_key(rig, "ob-x")
        line_a = topup("ob-x", "topup-a", 5, [("USDT", "600")])
        rig.publish(line_a)
        rig.settle(ref_x)
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["ob-x-topup-a#0"]

        snapshot = snapshot_state(rig)
        rig.clock.advance_ms(DAY_MS)
        rig.run(ref_x, retry_blocked=True)  # `provisioner customer retry`: A is re-decided and paid
        rig.settle(ref_x)
        assert [t["amount"] for t in paid_to(rig, uid_x)] == ["600"]
        ev = events_for("ob-x", funding=())
        offboard = {**ev["offboard"], "occurred_at": "2026-11-19T10:30:00Z"}
        rig.app.state.check()

        restore_state(rig, snapshot)  # restored: A's completion undelivered
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot")
            assert report.detected.startswith("rolled_back"), report
            redeliver(app, [ev["created"], ev["kyc"], line_a, offboard])
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            record = app.store.load(ref_x)
            assert record is not None and record.closed_at_ms is not None, "X is offboarded and closed"
            step = "fund:ob-x-topup-a#0"
            # found by elimination only (the ledger names orderIds): the refusal may stand for another line's
            # transfer, so an operator is asked, shown the transfer; the on-call checks with KuCoin: it is A's
            assert step in record.blocked and record.blocked[step].manual, record.blocked
            order_id = paid_to(rig, uid_x)[0]["orderId"]
            assert order_id in record.blocked[step].reason
            settle_transfer(app, ref_x, step, committed=True, order_id=order_id, who="oncall", note="KuCoin: A's")
            settle_with(rig, app, ref_x)
            record = app.store.load(ref_x)
            told = [e["key"] for e in outbound_of(app, "funding.completed")]
            lines = {k: (t.status.value, (t.note or "")[:40]) for k, t in record.transfers.items()}
            assert "ob-x-topup-a#0" in told, (
                f"the exchange paid A 600 USDT (then swept back), the upstream was told only funding.refused for it; "
                f"X's record: {lines}"
            )
        finally:
            app.close()
    finally:
        rig.close()
