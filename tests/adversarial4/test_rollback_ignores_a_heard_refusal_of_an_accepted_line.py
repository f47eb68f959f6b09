"""``_seed_heard`` (audit_steps.py) records a heard outcome only for a line the record does not hold: ``new = [o
for o in heard if o.key not in record.transfers]``. After a *rollback* (a restored snapshot, not a total loss)
the record may hold the line as ``ACCEPTED`` — a non-final status the snapshot caught between the send and Get
Transfer History. The upstream's ``funding.refused`` for it (heard after the snapshot) is dropped; when the
snapshot's attempt reads FAILURE the line goes back to being sent, and is paid."""

from __future__ import annotations

import contextlib

from handlers.records import TransferStatus
from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, restore_state, snapshot_state, topup
from tests.core.harness import Rig
from tests.core.test_lost_state import second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import recover


def test_a_line_refused_after_the_snapshot_is_paid_after_the_rollback_despite_heard(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: exchange ``accept`` (worker ``unknown``), transfers take 60 s to be final and (for now) all end
    FAILURE. A 250 USDT top-up is sent: ``ACCEPTED``. Redis is snapshotted here. Every attempt then ends FAILURE;
    the on-call replays the dead letters; after the tenth clientOid the line is refused ("sent 10 times") and the
    upstream hears ``funding.refused``. Redis is restored from the snapshot (detected: rolled back); the on-call runs
    ``provisioner recover --heard`` with everything the upstream received, which includes that refusal. Transfers
    now succeed again. The snapshot's attempt reads FAILURE (true), which blocks the line as "FAILED"; the on-call
    replays the dead letter, as the block asks.

    What happens: the audit skips the heard refusal because the restored record holds the line (``ACCEPTED``);
    the FAILURE forgets the transfer; on the replay the line is looked for (``ask_if_unfound`` is off, the
    outcomes being heard), found unpaid and sent under attempt 1's clientOid: 250 USDT paid, ``funding.completed``
    after ``funding.refused``.

    Why it is wrong: a refused line is never paid, and each line ends with exactly one verdict. The file of what
    the upstream heard is exactly what a rollback needs (docs/integration.md: "each is recorded as it was told to
    you, so no refused line is paid"); a heard verdict must win over a restored record's non-final state
    (``ACCEPTED``, a pending intent), not only fill in lines the snapshot lacked."""
    config = SandboxConfig.from_dict(
        {"duplicate_client_oid": "accept", "transfer_processing_ms": 60_000, "transfer_failure_share": 1.0}
    )
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "rb-accepted")
        key = "rb-accepted-topup#0"
        rig.publish(topup("rb-accepted", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        assert rig.record(ref).transfers[key].status is TransferStatus.ACCEPTED

        snapshot = snapshot_state(rig)
        for _ in range(15):  # every attempt FAILS; the on-call replays each dead letter
            rig.settle(ref)
            entry = rig.record(ref).transfers.get(key)
            if entry is not None and entry.status is TransferStatus.REFUSED:
                break
            rig.run(ref, retry_blocked=True)
        assert rig.record(ref).transfers[key].status is TransferStatus.REFUSED
        heard = outbound(rig.app)
        refusals = [e for e in heard if e["type"] == "funding.refused"]
        assert [e["key"] for e in refusals] == [key] and "10 times" in refusals[0]["reason"], refusals
        assert paid_to(rig, uid) == []
        rig.app.state.check()  # the host's mirror holds the newer write count

        restore_state(rig, snapshot)  # restored from the older snapshot
        rig.exchange.update_config({"transfer_failure_share": 0.0})
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot", heard=outcomes_from_events(heard))
            assert report.detected.startswith("rolled_back") and report.heard == 1, report
            for _ in range(3):  # the worker runs; the on-call replays what it reports as failed
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)
                with contextlib.suppress(Exception):
                    app.reconciler.run(ref, retry_blocked=True)
                rig.clock.advance_ms(3_600_000)

            paid = paid_to(rig, uid)
            told = [e["type"] for e in outbound(app) if e["type"].startswith("funding.") and e["key"] == key]
            actions = [e["action"] for e in app.store.journal(ref)]
            actions = actions[max(i for i, a in enumerate(actions) if a == "audited") :]
            journal = [a for i, a in enumerate(actions) if i == 0 or a != actions[i - 1]]
            assert paid == [], (
                f"a line the upstream heard refused was paid after the rollback ({len(paid)} transfer(s)); "
                f"told again: {told}; journal: {journal}"
            )
        finally:
            app.close()
    finally:
        rig.close()
