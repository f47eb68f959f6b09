"""9e5a9df makes the audit after a recovery drop a pending funding intent (``audit_steps._after_loss``): a
restored snapshot's intent may be stale, so its line is looked for in the ledger instead. The audit runs
``_after_loss`` whenever ``{p}:recovery:lost_at`` is set — and nothing ever deletes it. ``provisioner recover
--adopt`` on a *sound* state starts a new recovered epoch, so every customer is audited again, long after the
last loss: a live intent, whose transfer is at the exchange with its answer lost, is dropped, and its line (asked
for after the declaration: new, not "maybe lost") is sent again as an ordinary first send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, stamped_now
from tests.core.harness import Crash, Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import Adoption, declare_republished, recover

_TRANSFER = "/api/v1/broker/nd/transfer"


def test_an_adoption_after_an_old_loss_drops_a_live_intent_and_pays_its_line_twice(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: exchange and setting ``accept`` (KuCoin executes a repeated clientOid;
    ``PROVISIONER_CLIENT_OID_BEHAVIOUR=accept``, as the probe found; ``unknown``, the default, alike), default ledger.
    Some day Redis lost its state: ``provisioner recover``, re-publication, ``recover --republished``; all is well
    again. Later customer X (new since) asks for a 400 USDT top-up: reserved, intent written, sent; the exchange
    pays it but the answer is lost (time-out). Before X's intent is settled, the broker runs a routine migration
    step, ``provisioner recover --adopt map.csv`` (detected ``ok``).

    What happens: the adoption starts a new recovered epoch, so X is audited; ``{p}:recovery:lost_at`` (the old
    loss's, never deleted) is set, so ``audit_steps._after_loss`` drops X's pending intent (``pending=None``) and
    stamps ``recovered_at_ms`` with the old loss's time. The re-publication was declared after that, and X's line
    occurred after the declaration, so ``planner._maybe_lost`` says it is new: not looked for, not evidence-first.
    ``_funding`` sends it as a first send under the same clientOid: the exchange executes it again. X receives 800
    USDT for one 400 line; ``funding.completed`` once; no recheck is scheduled (``recheck_from_ms`` = 0), so nothing
    flags the second payment.

    Why it is wrong: exactly-once funding; an adoption "loses nothing" (the audit's own comment) and must not
    throw away the record of a transfer in flight. Before 9e5a9df the intent stayed and was settled from the
    ledger. Fix: in ``audit_from_exchange`` run ``_after_loss`` only for the recovery that follows a loss — e.g.
    store the epoch id with ``recovery_lost_at`` (or delete ``recovery_lost_at`` / compare it with the epoch's
    ``recovered_at``) and skip it for an adoption's epoch; or drop an intent only when the epoch recovered from a
    loss *after* the intent's ``started_at_ms``. Likely: any deployment that ever recovered from a loss and then
    adopts sub-accounts while funding lines are in flight (a migration runs in batches during business hours)."""
    config = SandboxConfig(duplicate_client_oid="accept")
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="accept")
    try:
        ref_z, _ = onboard_with_a_key(rig, "old-loss-z")
        lose_everything(rig)  # some day: Redis restarted without persistence
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: redis restarted without persistence")
            assert report.detected != "ok", report
            ev_z = events_for("old-loss-z", funding=())
            redeliver(app, [ev_z["created"], ev_z["kyc"]])
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            settle_with(rig, app, ref_z)
            rig.clock.advance_ms(3_600_000)  # an hour later, all is well

            ev_x = events_for("adopt-live-x", funding=())
            for event in (ev_x["created"], ev_x["kyc"]):
                assert isinstance(app.intake.accept(event), Accepted)
            ref_x = app.policy.naming.customer_ref("adopt-live-x")
            settle_with(rig, app, ref_x)
            record = app.store.load(ref_x)
            assert record is not None and record.sub_account is not None and record.live_keys
            uid_x = record.sub_account.uid
            assert isinstance(app.intake.accept(stamped_now(rig, "adopt-live-x", "topup", [("USDT", "400")])), Accepted)
            rig.transport.crash("POST", _TRANSFER, when="after")  # paid; the answer is lost
            with pytest.raises(Crash):
                app.reconciler.run(ref_x)
            pending = app.store.load(ref_x).pending
            assert pending is not None and [t["amount"] for t in paid_to(rig, uid_x)] == ["400"]
        finally:
            app.close()

        with rig.exchange.lock:  # a migration: an older system's sub-account to adopt
            legacy = rig.exchange.state.add_subaccount("legacyacct0909", rig.exchange.now_ms())
        rig.clock.advance_ms(11_000)  # the crashed run's lock expires
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="migration", adoptions=[Adoption("migrated-909", legacy.uid)])
            assert report.detected == "ok", report
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            paid = [t["amount"] for t in paid_to(rig, uid_x)]
            told = [e["key"] for e in outbound_of(app, "funding.completed")]
            record = app.store.load(ref_x)
            blocks = {k: b.reason[:100] for k, b in record.blocked.items()}
            dropped = [e.get("pending_dropped") for e in app.store.journal(ref_x) if e["action"] == "audited"]
            assert "adopt-live-x-topup#0" not in dropped, dropped  # the adoption's audit keeps the live intent
            assert paid == ["400"], f"X's one 400 USDT line was paid {paid}; told completed {told}; blocks {blocks}"
        finally:
            app.close()
    finally:
        rig.close()


def _offboarding_now(rig: Rig, customer: str) -> dict[str, Any]:
    slug = "".join(ch if ch.isalnum() else "-" for ch in customer)
    return {
        "id": f"{slug}-offboarded",
        "type": "customer.offboarded",
        "customer_id": customer,
        "occurred_at": datetime.fromtimestamp(rig.clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {},
    }


def test_an_adoption_after_an_old_loss_drops_a_live_intent_and_offboarding_tells_its_paid_line_refused(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: the exchange deduplicates a repeated clientOid and the setting says so (``dedupe``, the simulator's
    default). As above: an old loss, recovered and declared. Customer X's 400 USDT top-up is paid, its answer lost
    (intent pending, to be settled after the transfer settle delay). Within that delay the broker adopts a
    sub-account (``recover --adopt``, detected ``ok``) and X's offboarding arrives.

    What happens: X's next run audits it in the adoption's epoch; ``_after_loss`` drops the live intent. The line is
    new (after the declaration), so ``_offboard`` does not look for it (``_may_have_been_paid`` is false) and refuses
    it at once: ``funding.refused`` ("offboarded before this line was funded"), while the exchange holds X's 400
    USDT transfer (SUCCESS). The sweep then moves the 400 back.

    Why it is wrong: the upstream is told a verdict contrary to what the exchange did (``provisioner verify``:
    "funding.completed iff the transfer exists"); before 9e5a9df the intent was settled first (the planner settles a
    pending intent before offboarding) and the line told completed. Same root and fix as the test above: an
    adoption is not a loss, ``_after_loss`` must not run for its epoch."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe")
    try:
        ref_z, _ = onboard_with_a_key(rig, "old-loss-oz")
        lose_everything(rig)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: redis restarted without persistence")
            ev_z = events_for("old-loss-oz", funding=())
            redeliver(app, [ev_z["created"], ev_z["kyc"]])
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            settle_with(rig, app, ref_z)
            rig.clock.advance_ms(3_600_000)

            ev_x = events_for("adopt-off-x", funding=())
            for event in (ev_x["created"], ev_x["kyc"]):
                assert isinstance(app.intake.accept(event), Accepted)
            ref_x = app.policy.naming.customer_ref("adopt-off-x")
            settle_with(rig, app, ref_x)
            record = app.store.load(ref_x)
            assert record is not None and record.sub_account is not None
            uid_x = record.sub_account.uid
            event = stamped_now(rig, "adopt-off-x", "topup", [("USDT", "400")])
            assert isinstance(app.intake.accept(event), Accepted)
            rig.transport.crash("POST", _TRANSFER, when="after")  # paid; the answer is lost
            with pytest.raises(Crash):
                app.reconciler.run(ref_x)
            assert app.store.load(ref_x).pending is not None
        finally:
            app.close()

        with rig.exchange.lock:
            legacy = rig.exchange.state.add_subaccount("legacyacct0911", rig.exchange.now_ms())
        rig.clock.advance_ms(11_000)  # the crashed run's lock expires; X's intent is not due yet
        app = second_host(rig, same_host=True)
        try:
            assert recover(app, reason="migration", adoptions=[Adoption("migrated-911", legacy.uid)]).detected == "ok"
            assert isinstance(app.intake.accept(_offboarding_now(rig, "adopt-off-x")), Accepted)
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            paid = [t["amount"] for t in paid_to(rig, uid_x)]
            refused = [e["key"] for e in outbound_of(app, "funding.refused")]
            completed = [e["key"] for e in outbound_of(app, "funding.completed")]
            assert paid == ["400"], paid
            assert refused == [] and completed == ["adopt-off-x-topup#0"], (
                f"X's line was paid {paid} at the exchange; the upstream was told refused {refused}, "
                f"completed {completed}"
            )
        finally:
            app.close()
    finally:
        rig.close()
