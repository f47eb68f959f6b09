"""After a loss, a line the ledger showed unpaid is sent "evidence-first"; should the ledger have been slower than
``PROVISIONER_LEDGER_LAG_MS`` (the exchange contradicting the settings), the line is paid twice. The README
promises that this is never silent: "every transfer sent while an earlier send of its line may have gone through
is searched in the ledger again (after the settle delay and ten times later)". But ``money_steps.transfer`` clears
``evidence_first`` on the details before the send, so ``_entry`` / ``_earlier_send`` give the transfer no
``recheck_from_ms``: it is never searched again, and the double payment stays silent."""

from __future__ import annotations

import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of, paid_to
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import recover


def test_a_line_paid_twice_after_a_loss_under_a_slow_ledger_is_never_flagged(redis_url: str, key_prefix: str) -> None:
    """Scenario: exchange ``accept``, worker ``unknown``, ledger context ``client_oid`` (the ledger names our
    clientOid), the exchange's ledger lagging 10 minutes while ``PROVISIONER_LEDGER_LAG_MS`` says 30 s. The
    approval's 250 USDT is paid; Redis then loses everything; ``provisioner recover``; the upstream re-publishes.

    What happens: ``LookForTransfer`` and the evidence-first ``Transfer`` read the ledger before the entry is
    listed, find nothing, and send the line again under attempt 0's clientOid; the exchange executes it: two
    transfers of 250 USDT under one clientOid. The journal shows ``transfer.not_found`` → ``intent`` →
    ``transfer.accepted`` → ``transfer.committed``, and no ``transfer.rechecked``; nothing is blocked, no
    ``double:`` ``provisioning.failed`` is emitted, the exchange is not distrusted — even after the ledger shows
    both entries (the test waits an hour).

    Why it is wrong: the README's "Settings the exchange contradicts" says such a second payment "is never silent"
    (the send is searched for a second payment after the settle delay and ten times later). The send after a loss
    is exactly "a transfer sent while an earlier send of its line may have gone through"."""
    config = SandboxConfig.from_dict(
        {"duplicate_client_oid": "accept", "ledger_context": "client_oid", "ledger_lag_ms": 600_000}
    )
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ev = events_for("slow-after-loss")
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        assert [t["amount"] for t in paid_to(rig, uid)] == ["250"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)  # the ledger has long caught up: both entries are listed
            app.due.schedule(ref, int(rig.clock() * 1000))
            settle_with(rig, app, ref)

            paid = paid_to(rig, uid)
            record = app.store.load(ref)
            flagged = [e for e in outbound_of(app, "provisioning.failed") if e["step"].startswith("double:")]
            actions = [e["action"] for e in app.store.journal(ref)]
            assert len(paid) == 1 or flagged or app.state.distrust_reason() is not None, (
                f"paid {len(paid)} times ({[t['clientOid'][:10] for t in paid]}), nothing flagged; "
                f"blocked={sorted(record.blocked)}; journal={actions}"
            )
        finally:
            app.close()
    finally:
        rig.close()
