"""``customer.offboarded``'s id is ``customer.offboarded:<ref>:closed`` whatever it says (``lifecycle_steps.close``:
``outcome(record, "customer.offboarded", "closed", ...)``). 7f133e9 gave ``api_key.updated`` and
``provisioning.failed`` a digest of what they say, so that after a rollback a different outcome never reuses the id
of one the upstream heard before; ``customer.offboarded`` was left out. After a restore from a snapshot taken before
the close, the customer is closed a second time, and the second close's ``swept`` — what moved back since — comes
under the first one's id: the receiver drops it as a copy (docs/integration.md: "use them for de-duplication")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.adversarial.helpers import outbound_of, restore_state, snapshot_state, usdt_held
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis


def test_a_second_close_after_a_rollback_tells_what_it_swept_under_a_new_id(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: customer ``rb-off`` is funded 250 USDT. Redis is snapshotted (a nightly backup). The customer is
    offboarded: key revoked, 250 USDT moved back, closed; ``customer.offboarded`` (swept USDT 250) is delivered to
    the upstream, which records it (its de-duplication store now holds that id). A deposit of 100 USDT the customer
    had sent on-chain before leaving then lands on the sub-account. Redis is restored from the snapshot (an
    operator's restore, or an asynchronous failover to a lagging replica); ``provisioner recover`` detects the
    rollback; the upstream re-publishes the customer's events (the offboarding among them) and the on-call declares
    it.

    What happens: the restored record is not closed; the offboarding runs again, finds the 100 USDT, moves it back
    and closes the customer a second time: ``customer.offboarded`` with ``swept: {"USDT": "100"}``. Its id is
    ``customer.offboarded:<ref>:closed`` — exactly the id the upstream already holds — so a receiver that drops
    copies by id (as docs/integration.md asks) drops it. The upstream's books say 250 USDT came back; the Special
    Account actually received 350, 100 of them the customer's own deposit, which nobody on the upstream's side
    knows to return to the customer.

    Why it is wrong: the promise that ``customer.offboarded``'s ``swept`` is honest, and docs/integration.md:
    "Outcomes that can repeat for the same thing ... end in a digest of what they say, so that a different outcome
    never reuses the id of one you heard before, even after our state was restored from a backup" — a close can
    repeat after a restore, and it does not.

    Suggested fix: end ``customer.offboarded``'s id in a digest of what it says (``swept``, ``unconfirmed``,
    ``unread_wallets``, ``uid``), as ``failed``/``key_updated`` do — or in the sweep rounds it covers. (The same
    question applies to ``funding.refused``'s ``<key>:r<n>``, whose ``n`` is restored with the snapshot.)

    Likelihood: low-medium. Needs a rollback past a close plus money arriving after the close (a late on-chain
    deposit, a fill of an order left on the book): exactly the case where the second close has something to say.
    Impact: customer money moved into the broker's account with the upstream told nothing.
    """
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("rb-off")
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        assert usdt_held(rig, uid) == Decimal(250), "precondition: funded"
        rig.app.state.check()
        snapshot = snapshot_state(rig)  # the backup

        rig.clock.advance_ms(600_000)
        rig.publish(ev["offboard"])
        rig.settle(ref)
        first = outbound_of(rig, "customer.offboarded")
        assert len(first) == 1 and first[0]["swept"] == {"USDT": "250"}, first
        heard_ids = {e["id"] for e in rig.outbound()}  # delivered: the upstream's de-duplication store

        rig.clock.advance_ms(600_000)
        rig.exchange.credit(uid, "USDT", "MAIN", "100", deposit=True)  # a late on-chain deposit
        rig.app.state.check()

        restore_state(rig, snapshot)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from the nightly backup")
            assert report.detected.startswith("rolled_back"), report
            redeliver(app, [ev["created"], ev["kyc"], ev["offboard"]])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            for _ in range(3):
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)
                rig.clock.advance_ms(600_000)
            record = app.store.load(ref)
            assert record is not None and record.closed_at_ms is not None, "closed again"
            assert usdt_held(rig, uid) == 0, "precondition: the deposit was moved back too"
            second = outbound_of(app, "customer.offboarded")
            assert second and second[-1]["swept"] == {"USDT": "100"}, second
            new = [e for e in second if e["id"] not in heard_ids]
            assert new, (
                f"the second close moved back 100 USDT and said so under {second[-1]['id']!r}, the id of the first "
                f"close the upstream already holds (swept 250): dropped as a copy"
            )
        finally:
            app.close()
    finally:
        rig.close()
