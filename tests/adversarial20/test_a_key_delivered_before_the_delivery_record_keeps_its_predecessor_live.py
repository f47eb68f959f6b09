"""7b0f009 records a delivered ``api_key.issued`` in ``{p}:c:{ref}:keys:delivered`` from the deploy on; 76eab75's
planner keeps a rotated-out key live while its successor is not in that hash. A successor delivered before the
hash existed (deployed mid-rotation), or before webhooks were switched on (delivered through the stream and
trimmed by the consumer), is never in it: its predecessor stayed live until the next rotation, by age 90 days on.
Fixed: a key issued before the dispatcher first admitted anything (``wh:recording_since``) counts as delivered
then."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from tests.adversarial.helpers import onboard_with_a_key
from tests.adversarial18.test_a_rotated_out_key_is_revoked_before_its_successor_is_delivered import SECRET, Upstream
from tests.core.harness import Rig, events_for
from worker.webhooks.runtime import build_dispatcher

pytestmark = pytest.mark.redis

DAY_MS = 86_400_000


def test_a_rotation_in_its_grace_at_the_upgrade_keeps_the_old_key_for_months(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: webhooks on, grace one hour. Before 7b0f009 is deployed a customer asked for a rotation (perhaps
    because the old key leaked): key #1 was issued and its ``api_key.issued`` delivered by the dispatcher of the
    old release (which recorded no delivery), key #0 is in its grace. 7b0f009/76eab75 are deployed within that
    hour. (Simulated here by removing the customer's ``keys:delivered`` hash right after the delivery: the state
    the old release left. The same holds when webhooks are switched on after the stream consumer received and
    trimmed key #1's event.)

    What happens: after the grace, ``_keys`` finds key #1 "undelivered" (not in the hash) and keeps key #0 live,
    waking every minute to ask again. The event will never be delivered again, so key #0 stays live a week later
    — until key #1 is rotated by age (90 days) and its successor's delivery is recorded.

    Why it is wrong: the upstream asked for key #0 to go and already has key #1; the README promises revocation
    "after a grace period". Nothing migrates the deliveries made before the hash existed, nothing alerts on a
    revocation waiting for days (the view says "waiting"), and the worker wakes the customer 1440 times a day.

    Suggested fix: treat a successor as delivered when its ``api_key.issued`` is no longer pending in the
    dispatcher (not in any lane, not a dead letter) and was appended before the hash's first write — or seed
    ``keys:delivered`` at deploy/webhook switch-on from the outbound stream positions already delivered
    (``webhook_cursor`` and the lanes); alert on a revocation waiting longer than the retry horizon.

    Likelihood: low-moderate (every customer mid-rotation at the deploy or at switching webhooks on); impact: a
    rotated-out, possibly leaked key stays valid for up to the key's maximum age.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        PROVISIONER_WEBHOOK_URL="http://upstream.test/hooks",
        PROVISIONER_WEBHOOK_SECRET=SECRET,
        PROVISIONER_ROTATION_GRACE_SECONDS="3600",
    )
    upstream = Upstream(rig)
    dispatcher = build_dispatcher(
        rig.settings, rig.app.redis, transport=httpx.MockTransport(upstream), clock=rig.clock, draw=lambda: 0.0
    )
    assert dispatcher is not None
    try:
        ref, _ = onboard_with_a_key(rig, "upgrade")
        dispatcher.drain()
        old = rig.record(ref).live_keys[0].api_key
        rig.publish(events_for("upgrade")["rotate"])
        for _ in range(3):
            rig.app.reconciler.run(ref)
        dispatcher.drain()
        new = next(k.api_key for k in rig.record(ref).live_keys if k.api_key != old)
        assert new in upstream.issued(), "key #1 reached the upstream (through the old release's dispatcher)"
        rig.clock.advance_ms(60_000)  # the new release is deployed a minute later
        # the old release recorded no delivery, nor when recording began
        rig.app.redis.delete(rig.app.keys.keys_delivered(ref), rig.app.keys.webhook_recording_since)

        for _ in range(7 * 24):  # a week, an hour at a time
            with contextlib.suppress(AssertionError):
                rig.settle(ref, max_rounds=3, after_run=dispatcher.run_once)
            rig.clock.advance_ms(3_600_000)
        revoked_at = next(k.revoked_at_ms for k in rig.record(ref).keys if k.api_key == old)
        assert revoked_at is not None, (
            f"a week after its grace ended the rotated-out key {old} is still live: its successor {new} was "
            "delivered before keys:delivered existed"
        )
    finally:
        rig.close()
