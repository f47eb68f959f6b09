"""9e5a9df drops a restored *pending* funding intent because a snapshot's attempt may be stale: the line may have
gone on under a later clientOid after the snapshot. A restored record that says a line's attempt moved nothing —
an *accepted* transfer whose status then reads FAILURE, or a *block* of the exchange's refusal — is the same, and
stays: the line is blocked as "nothing moved" (not in doubt, never looked for) while it was paid under its next
attempt after the snapshot; the per-customer cap then lets a new line through."""

from __future__ import annotations

from decimal import Decimal

from sandbox import SandboxConfig
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


def test_a_rollback_restores_an_accepted_attempt_whose_failure_hides_the_next_attempts_payment(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: default exchange and ledger (``dedupe``, orderIds in the ledger), per-customer cap 1000 USDT.
    Customer X asks for 600 USDT (line A): attempt 0 is accepted (orderId X0) and still PROCESSING — Redis is
    snapshotted here (A accepted under X0). X0 then ends FAILURE: A is blocked; the on-call's ``provisioner
    customer retry`` sends attempt 1, which pays 600; the upstream hears ``funding.completed``. Redis is restored
    from the snapshot (rolled back); ``provisioner recover`` (no ``--heard``); the upstream re-publishes, the
    on-call declares it. Later X asks for a 600 USDT top-up (line B).

    What happens: the audit keeps A's restored accepted transfer (``_after_loss`` drops pending intents only); its
    status is read: X0 FAILURE, so ``_failed`` blocks A ("nothing moved") — not in doubt, and never looked for in
    the ledger (``_funding`` looks only for unsettled lines; a blocked one is not). The upstream hears
    ``provisioning.failed`` for a line it was told completed. B is new (after the declaration): the cap sees
    nothing funded and nothing in doubt (0 + 600 ≤ 1000) and sends it. X holds 1200 USDT, cap 1000.

    Why it is wrong: the per-customer cap ("no sequence of verdicts can exceed them") and the README's promise
    that after a loss a line recorded only as sent is looked for under each of its clientOids: 9e5a9df's reason —
    a snapshot's attempt may be stale, the line may have been refused, retried and paid since — holds for a
    restored accepted attempt whose status turns out FAILURE exactly as for a pending intent. Fix: in a recovered
    record, a FAILURE of an attempt restored from before the loss (``TransferRecord.at_ms`` before
    ``recovered_at_ms``) must not block the line as unsent: look for the line under every attempt first (or count
    it in doubt until looked for). Likely: needs a FAILURE (rare) retried before a rollback; a flush or
    ``--heard`` (A heard completed) avoids it."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe")
    try:
        ref_x, uid_x = onboard_with_a_key(rig, "rb-fail-x")
        line_a = topup("rb-fail-x", "topup-a", 5, [("USDT", "600")])
        rig.exchange.update_config({"transfer_failure_share": 1.0, "transfer_processing_ms": 60_000})
        rig.publish(line_a)
        rig.run(ref_x)
        accepted = rig.record(ref_x).transfers.get("rb-fail-x-topup-a#0")
        assert accepted is not None and accepted.status.value == "accepted", accepted

        snapshot = snapshot_state(rig)
        rig.exchange.update_config({"transfer_failure_share": 0.0, "transfer_processing_ms": 0})
        rig.clock.advance_ms(61_000)
        rig.settle(ref_x)  # X0 FAILURE: A blocked
        assert "fund:rb-fail-x-topup-a#0" in rig.record(ref_x).blocked, rig.record(ref_x).blocked
        rig.run(ref_x, retry_blocked=True)  # `provisioner customer retry`: attempt 1
        rig.settle(ref_x)
        assert [t["amount"] for t in paid_to(rig, uid_x)] == ["600"]
        assert [e["key"] for e in outbound_of(rig, "funding.completed")] == ["rb-fail-x-topup-a#0"]
        rig.app.state.check()  # the host's mirror holds the newer write count

        restore_state(rig, snapshot)  # restored from the older snapshot
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot")
            assert report.detected.startswith("rolled_back"), report
            ev = events_for("rb-fail-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line_a])
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            assert isinstance(app.intake.accept(stamped_now(rig, "rb-fail-x", "topup-b", [("USDT", "600")])), Accepted)
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            paid = sum((Decimal(t["amount"]) for t in paid_to(rig, uid_x)), Decimal(0))
            record = app.store.load(ref_x)
            blocks = {k: b.reason[:90] for k, b in record.blocked.items()}
            assert paid <= Decimal(1000), f"X was paid {paid} USDT, per-customer cap 1000; blocks: {blocks}"
        finally:
            app.close()
    finally:
        rig.close()


def test_a_rollback_restores_a_refusal_block_that_hides_the_next_attempts_payment_from_the_cap(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: default exchange and ledger, ``dedupe``, per-customer cap 1000 USDT, the Special Account holds 300
    USDT. Customer X asks for 600 USDT (line A): attempt 0 is refused (insufficient balance), A is blocked and the
    upstream hears ``provisioning.failed``. Redis is snapshotted here. The broker tops up; ``provisioner customer
    retry``: attempt 1 pays 600, the upstream hears ``funding.completed``. Redis is restored from the snapshot;
    ``provisioner recover`` (no ``--heard``); re-publication declared. Later X asks for a 600 USDT top-up (B).

    What happens: the restored block of A (the exchange's refusal of attempt 0) stands: a blocked line is neither
    in doubt nor looked for. B, new, is decided against a cap that sees nothing funded: sent. X holds 1200 USDT,
    cap 1000 (and a later ``customer retry`` of A finds attempt 1's payment and tells it completed).

    Why it is wrong: as above — a snapshot's "attempt 0 moved nothing" says nothing of attempt 1, sent after it.
    A balance refusal is an everyday event (the Special Account runs low), so this is the likelier form. Fix: a
    line blocked before the loss is looked for under every attempt before any later line of its currency is
    decided (or counts in doubt until it is)."""
    balances = {"MAIN": {"USDT": "300", "USDC": "100000", "BTC": "100", "ETH": "1000", "KCS": "100000"}}
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"initial_balances": balances}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
    )
    try:
        ref_x, uid_x = onboard_with_a_key(rig, "rb-ref-x")
        line_a = topup("rb-ref-x", "topup-a", 5, [("USDT", "600")])
        rig.publish(line_a)
        rig.settle(ref_x)
        assert "fund:rb-ref-x-topup-a#0" in rig.record(ref_x).blocked, rig.record(ref_x).blocked

        snapshot = snapshot_state(rig)
        with rig.exchange.lock:  # the broker tops the Special Account up
            broker = rig.exchange.state.broker.uid
            rig.exchange.state.credit(
                broker, "USDT", "MAIN", Decimal(10_000), now_ms=rig.exchange.now_ms(), deposit=False
            )
        rig.run(ref_x, retry_blocked=True)  # `provisioner customer retry`: attempt 1
        rig.settle(ref_x)
        assert [t["amount"] for t in paid_to(rig, uid_x)] == ["600"]
        rig.app.state.check()

        restore_state(rig, snapshot)  # restored from the older snapshot
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot")
            assert report.detected.startswith("rolled_back"), report
            ev = events_for("rb-ref-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line_a])
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            assert isinstance(app.intake.accept(stamped_now(rig, "rb-ref-x", "topup-b", [("USDT", "600")])), Accepted)
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            paid = sum((Decimal(t["amount"]) for t in paid_to(rig, uid_x)), Decimal(0))
            record = app.store.load(ref_x)
            blocks = {k: b.reason[:90] for k, b in record.blocked.items()}
            assert paid <= Decimal(1000), f"X was paid {paid} USDT, per-customer cap 1000; blocks: {blocks}"
        finally:
            app.close()
    finally:
        rig.close()
