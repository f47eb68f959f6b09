"""After a loss or rollback of our state, ``audit_steps.audit_from_exchange`` lists the sub-account's keys and marks
every key the record holds live but the exchange no longer lists as revoked ("no longer on the exchange"), sealed
secret dropped — in a commit with no outbound event. Everywhere else a key that goes away is told to the upstream
(``_revoked`` emits ``api_key.revoked``; ``resolve_api_key`` says so even of keys whose secret we never held, "a key
... may still have reached the upstream: say it is gone"). A rolled-back Redis loses the ``api_key.revoked`` that the
rotation wrote after the backup (the outbound stream is in the same Redis), and the audit, the one place that sees
the key gone, stays silent: the upstream is never told."""

from __future__ import annotations

import pytest

from tests.adversarial.helpers import onboard_with_a_key, outbound, outbound_of, restore_state, snapshot_state
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.recovery import recover

pytestmark = pytest.mark.redis


def test_a_key_revoked_after_the_backup_is_never_told_revoked_after_the_rollback(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: customer R has key K0. A rotation is requested: K1 is issued (``api_key.issued`` K1), K0 stays live
    for the rotation grace. Redis is backed up now (or a replica is this far behind). The grace passes: K0 is deleted
    at the exchange, ``api_key.revoked`` K0 is written to the outbound stream — and Redis is rolled back to the
    backup before that event was delivered (the webhook receiver was down for a few minutes; or the last second of
    an ``everysec`` AOF, or an asynchronous failover). The workers halt (``rolled_back``); the on-call runs
    ``provisioner recover``; the upstream re-publishes its events.

    What happens: the restored record holds K0 live with its sealed secret. The audit lists the keys, does not see
    K0, and marks it revoked ("no longer on the exchange") in a commit with no outbound event. Nothing else ever
    emits ``api_key.revoked`` for K0: the restored stream holds ``api_key.issued`` for K0 and K1 and nothing more
    about K0. The upstream believes the customer has two live keys, one of which the exchange deleted.

    Why it is wrong: the promise is "api_key.revoked iff so at the exchange"; a revocation is lost with the state
    and never re-derived, although the worker has everything it needs (the record names K0, the exchange no longer
    lists it). The event id is deterministic (``api_key.revoked:<ref>:<key>``), so telling it again costs an
    upstream that did hear it nothing.

    Suggested fix: in ``audit_from_exchange`` (and likewise ``list_keys``), emit ``outcome(record,
    "api_key.revoked", key, now, api_key=key, reason="no longer on the exchange")`` for each recorded live key the
    listing no longer shows, in the audit's commit (an upstream that heard it before drops the copy by id).

    Likelihood: low — a rollback (restore, lost ``everysec`` second, failover) after a rotation's revocation whose
    event had not been delivered yet. Impact: the upstream holds a dead key as live (the customer's bot fails
    authentication with the key the broker says is current); no money moves.
    """
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("rb-key", funding=())
        ref, _ = onboard_with_a_key(rig, "rb-key")
        k0 = rig.record(ref).live_keys[0].api_key
        rig.publish(ev["rotate"])
        rig.run(ref)  # K1 issued; K0 live for the grace
        assert [k.live for k in rig.record(ref).keys] == [True, True]
        snapshot = snapshot_state(rig)
        heard = outbound(rig)  # what the upstream had received at the backup

        rig.settle(ref)  # the grace passes: K0 is deleted, api_key.revoked written (not delivered yet)
        assert [e["api_key"] for e in outbound_of(rig, "api_key.revoked")] == [k0]
        rig.app.state.check()
        restore_state(rig, snapshot)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a backup")
            assert report.detected.startswith("rolled_back"), report
            ref2 = redeliver(app, [ev["created"], ev["kyc"], ev["rotate"]])
            assert ref2 == ref
            settle_with(rig, app, ref)

            live = {k["apiKey"] for k in rig.state()["apiKeys"] if k["deletedAt"] is None}
            assert k0 not in live  # the exchange deleted it before the rollback
            told_issued = {e["api_key"] for e in heard + outbound(app) if e["type"] == "api_key.issued"}
            told_revoked = {e["api_key"] for e in heard + outbound(app) if e["type"] == "api_key.revoked"}
            believed_live = told_issued - told_revoked
            assert believed_live == live, (
                f"the upstream holds {sorted(believed_live)} as live, the exchange has {sorted(live)}: "
                f"{k0} was deleted and never told revoked"
            )
        finally:
            app.close()
    finally:
        rig.close()
