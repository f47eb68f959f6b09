"""09dd4dc keeps an earlier recovery's "outcomes not heard" through a later recovery of a *sound* state
(``recover --adopt``), and that later recovery starts a new epoch in which every customer is audited again —
lazily, when its next event is worked — with ``recovered_at_ms`` set to that audit. The line whose event
triggers the audit occurred before it, so it is "maybe lost" (``_maybe_lost``), looked for with
``ask_if_unfound``, found unpaid (it never was sent: nothing was lost) and put to an operator as "may have been
refused before the loss". Every customer's first top-up after the adoption, however much later, waits."""

from __future__ import annotations

import shutil

from tests.adversarial.helpers import onboard_with_a_key, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import Adoption, declare_republished, recover
from worker.store.outbound import rfc3339


def test_a_top_up_asked_for_after_an_adoption_waits_for_an_operator(redis_url: str, key_prefix: str) -> None:
    """Scenario: default exchange. Redis loses everything; ``provisioner recover`` without ``--heard`` (the
    documented safe default); customer X's events are re-published and worked. Two days later, on a sound state,
    the broker migrates another customer: ``provisioner recover --adopt map.csv``. Three days later X asks for
    a 100 USDT top-up (a live event, occurring now — long after the adoption, nothing lost since the first
    recovery).

    What happens: the adoption's epoch has X audited again when its top-up is worked: ``recovered_at_ms`` = now,
    so the line (occurred just before that audit) "may have been sent before the loss"; the kept "outcomes not
    heard" (09dd4dc) makes its look-for ``ask_if_unfound``: not in the ledger, so it is blocked for an operator
    ("may have been refused before the loss … give `provisioner recover --heard`"). Nothing moves; the upstream has no
    verdict.

    Why it is wrong: no state was lost at the adoption; a line asked for after it cannot have been refused or paid
    before any loss. The first recovery's lack of heard outcomes concerns lines from before *that* loss; it must
    not make each customer's first line after a later, sound recovery wait for a person — operators asked
    needlessly, money not moving."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "after-adopt")
        ev = events_for("after-adopt", funding=())

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")  # no --heard
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(60_000)
            declare_republished(app)  # the on-call, once the upstream says it has re-published everything

            rig.clock.advance_ms(2 * 86_400_000)
            with rig.exchange.lock:  # a migration: an older system's sub-account to adopt
                legacy = rig.exchange.state.add_subaccount("legacyacct0077", rig.exchange.now_ms())
            report = recover(app, reason="migration", adoptions=[Adoption("migrated-77", legacy.uid)])
            assert report.detected == "ok"

            rig.clock.advance_ms(3 * 86_400_000)
            now = rfc3339(int(rig.clock() * 1000))
            live = {**topup("after-adopt", "topup-live", 0, [("USDT", "100")]), "occurred_at": now}
            assert isinstance(app.intake.accept(live), Accepted)
            settle_with(rig, app, ref)
            for _ in range(2):
                rig.clock.advance_ms(3_600_000)
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)

            record = app.store.load(ref)
            assert record is not None
            blocks = {step: b.reason[:170] for step, b in record.blocked.items()}
            paid = [t["amount"] for t in paid_to(rig, uid)]
            assert paid == ["100"] and not blocks, f"a top-up asked after a sound recovery: paid {paid}; {blocks}"
        finally:
            app.close()
    finally:
        rig.close()
