"""8487df8/3f95e34: ``provisioner webhooks disable`` is remembered only in Redis (``{p}:wh:disabled``, and the
deletion of ``{p}:wh:recording_since`` / ``{p}:wh:seen``). A Redis restored from a backup taken before the switch-off
(a rollback: the case ``provisioner recover`` exists for) brings back ``seen`` and ``recording_since`` without the
tombstone. ``recover`` then sets ``recording_since`` to 0 (no tombstone) and leaves the restored ``seen`` alone, so
every process — none of which runs a dispatcher any more — waits for deliveries nobody will ever record."""

from __future__ import annotations

import contextlib

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.adversarial.helpers import restore_state, snapshot_state
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.bootstrap import App
from worker.provisioning.reconciler import StepsBlocked
from worker.recovery import declare_republished, recover
from worker.webhooks.store import DeliveryStore

pytestmark = pytest.mark.redis

GRACE_S = 60
DAY_MS = 86_400_000


def run_for(rig: Rig, app: App, ref: str, *, hours: int) -> None:
    """The customer's runs, each at its wake-up, for ``hours`` of the rig's clock (a wait that polls never settles)."""
    end = int(rig.clock() * 1000) + hours * 3_600_000
    while int(rig.clock() * 1000) < end:
        app.due.cancel(ref)
        with contextlib.suppress(StepsBlocked):
            app.reconciler.run(ref)
        wake = app.due.next_due_ms(ref)
        now = int(rig.clock() * 1000)
        rig.clock.advance_ms(max(1_000, min((wake or end) - now, end - now)))


def test_a_rollback_past_webhooks_disable_leaves_rotations_waiting_for_ever(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: a deployment had webhooks (its dispatchers passed: ``{p}:wh:recording_since`` and ``{p}:wh:seen`` are
    set). Redis' nightly backup is taken. The next day the broker switches webhooks off for good, exactly as the
    README says: the URL removed from every worker, then ``provisioner webhooks disable --yes`` ("deliveries no
    longer tracked"). Later Redis is restored from that backup (a failed primary, an operator's restore: the README's
    "a restore from an older snapshot"). Every worker halts; the on-call runs ``provisioner recover`` from a shell
    without the webhook URL (there is none any more), the upstream re-publishes, the on-call declares it. A customer
    then asks for a key rotation (say its key #0 leaked).

    What happens: the restore brought back ``{p}:wh:seen`` and ``{p}:wh:recording_since`` and dropped the
    ``{p}:wh:disabled`` tombstone. ``recover`` sees no tombstone, sets ``recording_since`` to 0 and keeps the
    restored ``seen``; ``key_delivered_at`` answers ``None`` (not delivered yet) for key #1 in every process
    (``seen`` present, ``webhooks_here`` or not). No dispatcher runs anywhere, so no delivery is ever recorded: key
    #0 is never revoked. Nothing waits in a lane, no webhook metric is exported by processes without a URL, no step
    is blocked: no alert, no operator told; ``customer show`` says only that the api_key.issued "has not reached the
    upstream yet".

    Why it is wrong: the rotation the customer asked for never completes (the leaked key keeps trading access for
    ever), and an operator decision (``webhooks disable``) was silently undone by a state loss the worker itself
    detected and recovered from. ``recover`` already treats the delivery record as lost (it sets the moment to 0)
    but trusts the lost state's ``seen``/tombstone for whether deliveries are recorded at all.

    Suggested fix: after a loss, ``recover`` should decide whether deliveries are tracked from something the loss
    cannot take: delete ``{p}:wh:seen`` (only a dispatcher pass *after* the recovery proves one runs — as
    8487df8 meant: "tracking counting once a dispatcher has passed"), and keep the ``disable`` tombstone outside
    Redis too (the host's state mirror, beside the epoch) or ask ``recover --webhooks on|off``. At least export the
    waiting-rotation count from every process, with an alert.

    Likelihood: low to medium (needs a switch-off of webhooks and later a restore from a backup older than it), but
    silent and unbounded: a rotation stuck for ever on exactly the deployments that chose to run without webhooks.
    """
    rig = Rig(redis_url, key_prefix, PROVISIONER_ROTATION_GRACE_SECONDS=str(GRACE_S))  # the config after the switch
    try:
        hooks = DeliveryStore(rig.app.redis, rig.app.keys)
        hooks.admit(int(rig.clock() * 1000))  # while the deployment had webhooks, its dispatchers passed
        ev = events_for("wh-rollback")
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref)
        hooks.admit(int(rig.clock() * 1000))
        (first,) = [k.api_key for k in rig.record(ref).live_keys]

        backup = snapshot_state(rig)  # the nightly backup, webhooks still on
        rig.clock.advance_ms(DAY_MS)
        env = {"REDIS_URL": rig.settings.redis_url, "PROVISIONER_REDIS_PREFIX": rig.settings.key_prefix}
        done = CliRunner().invoke(main, ["webhooks", "disable", "--yes"], env=env, catch_exceptions=False)
        assert done.exit_code == 0 and "no longer tracked" in done.output, done.output

        other = events_for("wh-rollback-other")  # the day's business goes on after the switch-off
        (other_ref,) = rig.publish(other["created"], other["kyc"])[:1]
        rig.settle(other_ref)
        rig.app.state.check()  # the host's mirror sees the newer writes

        rig.clock.advance_ms(DAY_MS)
        restore_state(rig, backup)  # Redis restored from the backup: the workers halt
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="Redis restored from last night's backup")  # the on-call's shell: no URL
            assert report.detected != "ok", f"precondition: the restore is detected ({report.detected})"
            redeliver(app, [ev["created"], ev["kyc"]])
            declare_republished(app)
            settle_with(rig, app, ref)
            assert [k.api_key for k in app.store.load(ref).live_keys] == [first], "precondition: key #0 audited"

            rig.clock.advance_ms(60_000)
            redeliver(app, [ev["rotate"]])
            run_for(rig, app, ref, hours=6)
            live = [k.api_key for k in app.store.load(ref).live_keys]
            r = app.redis
            assert first not in live and len(live) == 1, (
                f"6 h after the rotation key #0 is still live ({live}) in a deployment that ran 'webhooks disable';"
                f" seen={r.get(app.keys.webhook_seen)} disabled={r.get(app.keys.webhook_disabled)}"
                f" recording_since={r.get(app.keys.webhook_recording_since)}"
            )
        finally:
            app.close()
    finally:
        rig.close()
