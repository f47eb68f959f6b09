"""A Redis restored from an older snapshot (a rollback: detected, then ``provisioner recover``) brings back
``CustomerRecord.unsent_by_operator`` — an operator's verdict that a clientOid had moved no money *when the snapshot
was taken*. After the recovery the planner takes it as current: ``_looked`` counts the line as searched,
``_funding`` sends it with ``operator_unsent=True`` and not evidence-first, so the ledger is not read before the
send; and the recheck of the send leaves "cannot tell" to "the operator's call". A line paid after the snapshot
(on that very verdict) is paid again, silently."""

from __future__ import annotations

from decimal import Decimal

from sandbox import SandboxConfig
from tests.adversarial.helpers import (
    onboard_with_a_key,
    outbound_of,
    paid_to,
    restore_state,
    set_faults,
    snapshot_state,
    topup,
)
from tests.core.harness import Rig
from tests.core.test_lost_state import second_host, settle_with
from worker.exchange.models import AccountType, Direction
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.recovery import recover


def test_a_line_paid_after_the_snapshot_is_paid_again_on_the_restored_verdict(redis_url: str, key_prefix: str) -> None:
    """Scenario: exchange ``accept``, worker ``unknown``, ledger context ``none``. A 250 USDT top-up's send meets a
    5xx (nothing moved; the worker cannot know); another sub-account is paid 250 USDT meanwhile, so the ledger
    cannot tell and the line is blocked for an operator. The on-call checks with KuCoin — no transfer under that
    clientOid — and answers ``--not-committed`` (true). Redis is snapshotted here. The line is then sent and paid
    (``funding.completed``). Redis is restored from the snapshot; the host's mirror sees the rollback; ``provisioner
    recover``.

    What happens: the audit marks the record recovered, but the restored ``unsent_by_operator`` makes ``_funding``
    skip ``LookForTransfer`` and the evidence-first search and send the line again under the same clientOid; the
    exchange executes it. Two 250 USDT transfers to the sub-account under one clientOid; the recheck finds entries
    without ids and, the send being on an operator's word, records "operator's verdict" — no block, no
    ``double:`` ``provisioning.failed``, no distrust.

    Why it is wrong: never a double transfer after a state loss, and a second payment is never silent. The
    verdict was true of the exchange at snapshot time only; after a rollback everything recorded since is unknown,
    so the line must be looked for (here the ledger cannot tell, so it must go back to an operator), not sent on a
    verdict the lost writes had already acted on."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "none"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "rollback-verdict")
        step = "fund:rollback-verdict-topup#0"
        set_faults(rig, "transfer", **{"5xx": 1.0})  # refused before the exchange committed anything
        rig.publish(topup("rollback-verdict", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", **{"5xx": 0.0})
        other = rig.app.exchange.sub_accounts.add(account_name="rollbackother001")
        rig.app.exchange.transfers.transfer(
            currency="USDT",
            amount=Decimal(250),
            direction=Direction.OUT,
            account_type=AccountType.MAIN,
            special_uid=other.uid,
            special_account_type=AccountType.TRADE,
            client_oid="someone-else",
        )
        rig.settle(ref)
        assert [s for s, b in rig.record(ref).blocked.items() if b.manual] == [step]
        assert paid_to(rig, uid) == []
        settle_transfer(rig.app, ref, step, verdict=TransferVerdict.NOT_COMMITTED, who="on-call", note="KuCoin: none")

        snapshot = snapshot_state(rig)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["250"], "paid on the verdict"
        assert [e["key"] for e in outbound_of(rig, "funding.completed")] == ["rollback-verdict-topup#0"]
        rig.app.state.check()  # the host's mirror holds the newer write count

        restore_state(rig, snapshot)  # restored from the older snapshot
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: Redis restored from an older snapshot")
            assert report.detected.startswith("rolled_back"), report.detected
            app.due.schedule(ref, int(rig.clock() * 1000))
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)
            app.due.schedule(ref, int(rig.clock() * 1000))
            settle_with(rig, app, ref)

            paid = paid_to(rig, uid)
            flagged = [e for e in outbound_of(app, "provisioning.failed") if e["step"].startswith("double:")]
            record = app.store.load(ref)
            assert len(paid) == 1 or flagged or any(b.manual for b in record.blocked.values()), (
                f"paid {len(paid)} times under {sorted({t['clientOid'][:10] for t in paid})}, nothing flagged; "
                f"journal after the recovery: {[e['action'] for e in app.store.journal(ref)][-8:]}"
            )
        finally:
            app.close()
    finally:
        rig.close()
