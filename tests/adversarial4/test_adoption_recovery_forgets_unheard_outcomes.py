"""``recover`` treats a recovery of a *sound* state (adoptions only) as knowing every funding outcome the upstream
heard (``heard = []``, ``recovery:heard_given`` set), and starts a new epoch in which every customer is audited
again with ``outcomes_heard=True`` and ``looked_for`` reset. But a sound state after an earlier recovery that was
given no ``--heard`` file does *not* hold every outcome: the lines asked for before that loss, not yet
re-published, are still unknown. A later ``recover --adopt`` (a migration, days later) silently turns "may have
been refused: an operator decides" into "never decided: send it", and a refused line is paid."""

from __future__ import annotations

import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, set_faults, topup, violations_after
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.recovery import Adoption, recover


def test_an_adoption_after_a_recovery_without_heard_pays_a_refused_line(redis_url: str, key_prefix: str) -> None:
    """Scenario: exchange ``accept``, worker ``unknown``, ledger context ``client_oid``. While the exchange stands
    distrusted, a 250 USDT top-up's send meets a 5xx (nothing moved) and is blocked; the on-call answers
    ``--refused`` and the upstream hears ``funding.refused``. Redis loses everything. ``provisioner recover``
    *without* ``--heard`` (the upstream's archive is not at hand): by design, a line from before the loss that the
    ledger shows unpaid will wait for an operator. The upstream starts re-publishing (the customer's creation and
    approval arrive and are worked). Before the top-up is re-published, the broker migrates another customer:
    ``provisioner recover --adopt map.csv`` on the now sound state. Then the top-up is re-published.

    What happens: the adoption's recovery stores ``heard = []`` as "given"; the new epoch re-audits the customer
    with ``outcomes_heard=True``; the re-published line is looked for without ``ask_if_unfound``, found unpaid
    (true) and sent: 250 USDT paid, ``funding.completed`` after ``funding.refused``.

    Why it is wrong: a refused line is never paid, and every line ends with exactly one verdict. Nothing the
    adoption did told the worker what the upstream heard before the first loss; "the state is sound now" only
    means our records hold the outcomes *they* hold. Without heard outcomes the line must still wait for an
    operator (the first recovery's lack of them must survive a later recovery that adds none)."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "client_oid"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "adopt-forgets")
        ev = events_for("adopt-forgets", funding=())
        late = topup("adopt-forgets", "topup", 5, [("USDT", "250")])
        step = "fund:adopt-forgets-topup#0"
        rig.app.state.distrust("test: a double payment of another customer, being dealt with")
        set_faults(rig, "transfer", **{"5xx": 1.0})
        rig.publish(late)
        rig.run(ref)
        set_faults(rig, "transfer", **{"5xx": 0.0})
        rig.settle(ref)
        assert [s for s, b in rig.record(ref).blocked.items() if b.manual] == [step]
        rig.app.state.trust()
        settle_transfer(rig.app, ref, step, verdict=TransferVerdict.REFUSED, who="on-call", note="withdrawn")
        rig.settle(ref)
        assert paid_to(rig, uid) == []
        heard = outbound(rig.app)
        assert [e["key"] for e in heard if e["type"] == "funding.refused"] == ["adopt-forgets-topup#0"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: Redis restarted without persistence")  # no --heard
            assert report.heard is None
            ref = redeliver(app, [ev["created"], ev["kyc"]])  # the re-publication has begun
            settle_with(rig, app, ref)
            assert app.store.load(ref).outcomes_heard is False  # type: ignore[union-attr]

            with rig.exchange.lock:  # a migration: an older system's sub-account to adopt
                legacy = rig.exchange.state.add_subaccount("legacyacct0042", rig.exchange.now_ms())
            report = recover(app, reason="migration", adoptions=[Adoption("migrated-42", legacy.uid)])
            assert report.detected == "ok"

            published = [ev["created"], ev["kyc"], late]
            ref = redeliver(app, published)  # the rest of the re-publication
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)
            app.due.schedule(ref, int(rig.clock() * 1000))
            settle_with(rig, app, ref)

            violations = violations_after(rig, app, published, heard)
            told = [
                f"{v.invariant}: {v.detail}" for v in violations if v.invariant == "the upstream was told the truth"
            ]
            paid = paid_to(rig, uid)
            assert paid == [] and told == [], (
                f"a line refused before the loss was paid after an adoption's recovery ({len(paid)} transfer(s)): "
                f"{told}"
            )
            record = app.store.load(ref)
            assert record is not None and record.blocked[step].manual
        finally:
            app.close()
    finally:
        rig.close()
