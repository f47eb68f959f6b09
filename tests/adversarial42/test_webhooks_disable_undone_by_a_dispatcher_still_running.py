"""3f95e34: ``provisioner webhooks disable`` deletes ``{p}:wh:recording_since``; every dispatcher pass runs ``SET
{p}:wh:recording_since <now> NX`` (the admit script). A dispatcher still running when the operator disables — one
pod of a rolling deploy still on the old configuration, a worker host whose URL was not removed yet — re-creates
the key on its next pass, a fraction of a second later. From then on every process, none of which delivers
webhooks any more, waits for deliveries that nobody will ever make."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.core.harness import Rig, events_for
from worker.webhooks.store import DeliveryStore

pytestmark = pytest.mark.redis

GRACE_S = 60


def test_webhooks_disable_while_a_dispatcher_still_runs_leaves_rotations_waiting_for_ever(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: a deployment switches webhooks off. The on-call removes ``PROVISIONER_WEBHOOK_URL`` from the
    workers' configuration and, while the rollout is still going (one old pod still runs its dispatcher), runs
    ``provisioner webhooks disable --yes``; it answers "deliveries no longer tracked". The old pod passes once more
    and is replaced. Days later a customer asks for a key rotation.

    What happens: the old pod's pass re-created ``{p}:wh:recording_since`` (``SET NX`` in the admit script). Key #1
    is issued after that moment, no dispatcher exists to record its delivery, and ``key_delivered_at`` answers
    ``None`` (wait) in every process: key #0 is never revoked. No alert: the webhook metrics are exported only by a
    process with a webhook URL, and nothing waits in a lane.

    Why it is wrong: the rotation the customer asked for (often because key #0 leaked) never completes and no
    operator is told; ``disable`` claimed success. A wait must have an alert or a visible reason, and an end.

    Suggested fix: make ``disable`` durable against stale dispatchers — a tombstone (``{p}:wh:disabled``) the admit
    script checks before its ``SET NX`` (and refuses to dispatch while it exists); or let a process without
    webhooks stop waiting once no dispatcher has passed for long *and* no lane holds the key's ``api_key.issued``;
    at least export ``provisioner_webhook_undelivered``/a waiting-rotation gauge from every process.

    Likelihood: medium wherever webhooks are ever switched off (rolling deploys are the norm; the command's own
    help asks to run it after the rollout but nothing checks); impact: a key rotation stuck for ever, silently.
    """
    rig = Rig(redis_url, key_prefix, PROVISIONER_ROTATION_GRACE_SECONDS=str(GRACE_S))  # the new config: no URL
    try:
        hooks = DeliveryStore(rig.app.redis, rig.app.keys)
        hooks.admit(int(rig.clock() * 1000))  # the deployment had webhooks: its dispatchers recorded
        ev = events_for("wh-disabled")
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref)
        (first,) = [k.api_key for k in rig.record(ref).live_keys]

        env = {"REDIS_URL": rig.settings.redis_url, "PROVISIONER_REDIS_PREFIX": rig.settings.key_prefix}
        done = CliRunner().invoke(main, ["webhooks", "disable", "--yes"], env=env, catch_exceptions=False)
        assert done.exit_code == 0 and "no longer tracked" in done.output, done.output
        rig.clock.advance_ms(200)
        hooks.admit(int(rig.clock() * 1000))  # the old pod's last dispatcher pass, then it is replaced

        rig.clock.advance_ms(86_400_000)
        rig.publish(ev["rotate"])
        for _ in range(6):
            rig.settle(ref, horizon_ms=1_000)
            rig.clock.advance_ms(3_600_000)
        live = [k.api_key for k in rig.record(ref).live_keys]
        assert first not in live and len(live) == 1, (
            f"6 h after the rotation key #0 is still live ({live}); recording_since="
            f"{rig.app.redis.get(rig.app.keys.webhook_recording_since)} though `webhooks disable` said untracked"
        )
    finally:
        rig.close()
