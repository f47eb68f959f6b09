"""8b75a05's ``provisioner recover --republished --stamps-kept`` is the on-call's word that the upstream re-sent its
events with their original ``occurred_at``; a line stamped after the loss is then "new" (``_maybe_lost`` false):
sent without being looked for, evidence-first off, no earlier send to search for a second payment. Where the
upstream did re-stamp (the on-call is wrong, or one of several upstream services re-stamps), a line paid before
the loss is sent again as new — on an exchange that executes a repeated clientOid it is paid twice, and nothing
ever looks: no ``double:`` block, no alert, the upstream told ``funding.completed`` once."""

from __future__ import annotations

import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import declare_republished, recover
from worker.store.outbound import rfc3339


def test_a_wrong_stamps_kept_pays_a_restamped_line_twice_and_nothing_notices(redis_url: str, key_prefix: str) -> None:
    """Scenario: exchange ``accept`` (a repeated clientOid makes a new transfer), worker configured ``unknown``
    (the safe setting when the exchange's behaviour is not known), default ledger (entries name the orderId). A
    250 USDT top-up is paid. Redis loses everything; ``provisioner recover`` (no ``--heard``). The upstream
    re-publishes: creation, approval, then the top-up — same event id, same line — stamped with the time it is
    re-published (ten minutes after the recovery). The line waits, as 8b75a05 intends. The on-call, told by the
    upstream team that events are re-sent "as they were", declares ``--republished --stamps-kept``.

    What happens: the re-stamped line is "surely after the loss", so ``_maybe_lost`` is false: it is sent as a new
    line (``evidence_first`` false, ``earlier_send_ms`` 0, ``twins`` 0) under attempt 0's clientOid — the one that
    already paid — and the exchange executes it again: 500 USDT moved for one 250 USDT line. The send is never
    searched for a second payment (nothing says an earlier send may exist), so no ``double:`` block, no
    ``provisioning.failed``, no distrust: only an offline ``provisioner verify`` could find it. Without
    ``--stamps-kept`` the same line is looked for first and found (paid once).

    Why it is wrong: never a double transfer after a loss; where a setting or an operator's word the exchange
    contradicts makes one possible, the README promises it is "never silent" (every send that may repeat an
    earlier one is searched for a second payment). ``--stamps-kept`` is an unverifiable claim about a third
    party's re-publication; its blast radius (lines paid twice on exchanges that execute repeats, silently) is
    stated nowhere — the CLI help, README and runbook describe only its benefit. The line's own clientOids
    (every attempt's) can be looked for in the ledger before a line stamped after the loss is sent, at the
    cost of one ledger read, whatever the declaration says."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "wrong-kept")
        ev = events_for("wrong-kept", funding=())
        original = topup("wrong-kept", "topup", 5, [("USDT", "250")])
        rig.publish(original)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["250"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(10 * 60_000)
            restamped = {**original, "occurred_at": rfc3339(int(rig.clock() * 1000))}
            assert isinstance(app.intake.accept(restamped), Accepted)
            settle_with(rig, app, ref)
            assert [t["amount"] for t in paid_to(rig, uid)] == ["250"], "the line waits for the declaration"

            declare_republished(app, stamps_kept=True)  # the on-call's word; the upstream did re-stamp
            for _ in range(12):  # half a day: every recheck the worker would make has come
                settle_with(rig, app, ref)
                rig.clock.advance_ms(3_600_000)
                app.due.schedule(ref, int(rig.clock() * 1000))

            paid = [t["amount"] for t in paid_to(rig, uid)]
            record = app.store.load(ref)
            assert record is not None
            flags = sorted(step for step in record.blocked if step.startswith("double:"))
            told_failed = [e["step"] for e in outbound_of(app, "provisioning.failed")]
            assert len(paid) == 1 or flags, (
                f"line wrong-kept-topup#0 paid {len(paid)} times ({paid}) and nothing flags it: blocks "
                f"{sorted(record.blocked)}, provisioning.failed {told_failed}, distrust "
                f"{app.state.distrust_reason()!r}"
            )
        finally:
            app.close()
    finally:
        rig.close()


def test_a_wrong_stamps_kept_tells_a_paid_line_refused_at_offboarding(redis_url: str, key_prefix: str) -> None:
    """Scenario: the default exchange and worker (repeats deduplicated; ledger entries name the orderId). A 250
    USDT top-up is paid. Redis loses everything; ``provisioner recover`` (no ``--heard``). The upstream re-publishes
    creation, approval and the top-up — the top-up re-stamped with the time of re-publication — and the customer
    then offboards. The on-call declares ``--republished --stamps-kept`` (wrongly: the upstream re-stamped).

    What happens: before the declaration the offboarding waits for the line (good). After it, the re-stamped line
    is "new" (``_maybe_lost`` false), so ``_offboard`` refuses it without looking: ``funding.refused`` ("offboarded
    before this line was funded") for a line whose 250 USDT the exchange moved, and the customer is closed.
    Without ``--stamps-kept`` the line is looked for and told ``funding.completed``.

    Why it is wrong: ``funding.completed`` iff the transfer exists; a refusal is final for the upstream, which then
    owes the customer a top-up it already received. A line refused at offboarding after a loss can be looked for
    first at the cost of one ledger read, whatever the declaration says; and the declaration's blast radius (paid
    lines told refused) is documented nowhere."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "kept-off")
        ev = events_for("kept-off", funding=())
        original = topup("kept-off", "topup", 5, [("USDT", "250")])
        rig.publish(original)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["250"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(10 * 60_000)
            now = rfc3339(int(rig.clock() * 1000))
            for event in ({**original, "occurred_at": now}, {**ev["offboard"], "occurred_at": now}):
                assert isinstance(app.intake.accept(event), Accepted)
            settle_with(rig, app, ref)
            assert outbound_of(app, "funding.refused") == [], "the offboarding waits for the declaration"

            declare_republished(app, stamps_kept=True)  # the on-call's word; the upstream did re-stamp
            settle_with(rig, app, ref)

            record = app.store.load(ref)
            assert record is not None
            refused = [e["key"] for e in outbound_of(app, "funding.refused")]
            completed = [e["key"] for e in outbound_of(app, "funding.completed")]
            assert "kept-off-topup#0" not in refused, (
                f"told funding.refused for a line the exchange paid ({[t['orderId'] for t in paid_to(rig, uid)]}); "
                f"completed {completed}; customer closed: {record.closed_at_ms is not None}"
            )
        finally:
            app.close()
    finally:
        rig.close()
