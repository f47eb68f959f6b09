"""884f605 (adv21 fix) keeps a second payment the recheck found on the line's record (``TransferRecord.extra_paid``,
counted by ``CustomerRecord.funded``) so no later top-up is sent into the room it took. That count lives only in
our state. After a loss ``provisioner recover --heard`` rebuilds the line from what the upstream heard
(``audit_steps._seed_heard``: ``funding.completed`` -> one committed transfer, ``extra_paid`` 0, no recheck
scheduled), the ``double:`` block and the distrust are gone, and nothing searches the ledger for the line again
(a heard line is recorded, so it is never looked for; the look for a new line weighs only transfers of its own
amount). adv21's overrun comes back."""

from __future__ import annotations

import shutil
from decimal import Decimal
from typing import Any

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import (
    onboard_with_a_key,
    outbound,
    outbound_of,
    paid_to,
    set_faults,
    stamped_now,
    topup,
    total,
)
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis


def test_a_top_up_after_a_loss_overruns_the_cap_a_found_second_payment_took(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: adv21's: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe`` while the exchange executes repeats
    (``accept``); per-customer cap 1000 USDT. Customer W's 400 USDT top-up t1 is paid twice (lost answer, re-send);
    the recheck finds it: ``double:`` block, ``provisioning.failed``, ``extra_paid`` = 1, exchange distrusted. Before
    anyone acts, Redis restarts without persistence; on-call runs ``provisioner recover --heard`` with the
    upstream's received events (t1: ``funding.completed``), the upstream re-publishes, on-call declares it. The
    upstream then asks for a 500 USDT top-up t2.

    What happens: the audit records t1 committed once from the heard completion (``extra_paid`` 0, no recheck);
    ``funded`` = 400, 400 + 500 <= 1000: t2 is sent. 1300 USDT reached the sub-account against a cap of 1000 — the
    adv21 hole, reopened by a loss the recovery is designed to survive. Nothing flags the second payment again.

    Why wrong: the fix's promise ("so no later top-up is sent into the room it took") holds only while our state
    does; the recovery rebuilds from the exchange precisely so such facts are not lost, and the ledger still shows
    both payments (the first send's and the repeat's orders, one of which no record explains).

    Suggested fix: a line recorded from a heard completion (or found by ``look_for_transfer``) after a loss is
    rechecked for a second payment from its first possible send (set ``recheck_from_ms``/``recheck_at_ms`` in
    ``_seed_heard``), so ``extra_paid`` and the ``double:`` block are rebuilt; or count on the per-customer cap every
    transfer to the sub-account the ledger shows that no recorded order explains (``_unexplained_to_sub_account``).

    Likelihood: low (a double payment, then a loss before the customer's next top-up); impact: money beyond the
    per-customer cap, the double forgotten.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(duplicate_client_oid="accept"),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "lost-dbl")
        ev = events_for("lost-dbl", funding=())
        t1 = topup("lost-dbl", "t1", 5, [("USDT", "400")])
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(t1)
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)
        assert total(paid_to(rig, uid)) == Decimal(800), paid_to(rig, uid)
        assert rig.record(ref).transfers["lost-dbl-t1#0"].extra_paid == 1
        assert rig.record(ref).funded("USDT") == Decimal(800)
        heard = outbound(rig.app)
        rig.clock.advance_ms(3_600_000)

        paid, funded, completed = top_up_after_a_heard_recovery(
            rig, ev, t1, heard, customer="lost-dbl", uid=uid, amount="500"
        )
        assert paid <= 1000, (
            f"{paid} USDT moved against a cap of 1000 (record counted {funded} funded after the loss; "
            f"told completed: {completed})"
        )
    finally:
        rig.close()


def top_up_after_a_heard_recovery(
    rig: Rig,
    ev: dict[str, Any],
    t1: dict[str, Any],
    heard: list[dict[str, Any]],
    *,
    customer: str,
    uid: str,
    amount: str,
) -> tuple[Decimal, Decimal, list[str]]:
    """Redis lost, ``recover --heard`` with ``heard`` (complete), the customer's events and line ``t1``
    re-published and declared, then a top-up ``t2`` of ``amount`` USDT: what reached sub-account ``uid``, what the
    rebuilt record counted funded before the top-up, and the lines told completed."""
    lose_everything(rig)
    shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
    app = second_host(rig, same_host=True)
    try:
        report = recover(
            app,
            reason="test: Redis restarted without persistence",
            heard=outcomes_from_events(heard),
            heard_complete=True,
        )
        assert report.heard == 1, report
        ref = redeliver(app, [ev["created"], ev["kyc"], t1])
        settle_with(rig, app, ref)
        rig.clock.advance_ms(1_800_000)
        declare_republished(app)
        settle_with(rig, app, ref)
        record = app.store.load(ref)
        assert record is not None
        funded = record.funded("USDT")
        app.intake.accept(stamped_now(rig, customer, "t2", [("USDT", amount)]))
        for _ in range(3):
            app.due.schedule(ref, int(rig.clock() * 1000))
            settle_with(rig, app, ref)
            rig.clock.advance_ms(600_000)
        completed = [e["key"] for e in outbound_of(app, "funding.completed")]
        return total(paid_to(rig, uid)), funded, completed
    finally:
        app.close()
