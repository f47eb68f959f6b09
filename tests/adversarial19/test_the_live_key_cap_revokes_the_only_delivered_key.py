"""7b0f009 makes a rotated-out key wait for its successor's delivery, but only on the grace path
(``RevokeApiKey(successor=...)``). The live-key cap path of the planner (``_keys``: "making room under the key cap
first") revokes the oldest live key with ``successor=None``: the executor's delivery check never runs for it."""

from __future__ import annotations

import contextlib
import copy

import httpx
import pytest

from tests.adversarial.helpers import onboard_with_a_key
from tests.adversarial18.test_a_rotated_out_key_is_revoked_before_its_successor_is_delivered import SECRET, Upstream
from tests.core.harness import Rig, events_for
from worker.webhooks.runtime import build_dispatcher

pytestmark = pytest.mark.redis


def test_the_live_key_cap_revokes_the_only_key_the_upstream_holds(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: ``PROVISIONER_MAX_LIVE_KEYS=2`` (allowed: 2..20; the default 5 needs five rotations instead of two),
    webhooks on. The customer's first key is delivered. The upstream's webhook receiver goes down; the upstream
    asks for a rotation, then (still before the grace, or after it: the old key now waits anyway) for another.

    What happens: rotation 1 issues key #1 (its ``api_key.issued`` waits in the lane); key #0 waits for that
    delivery, as 7b0f009 intends. Rotation 2 finds two live keys, the cap: the planner returns
    ``RevokeApiKey(key #0, reason="rotated (the live-key cap left no room)")`` with no ``successor``, so
    ``revoke_api_key`` skips the delivery check and deletes key #0 at once. The upstream's only key is gone, and
    neither key #1 nor key #2 has reached it: the adv18 lock-out, through the other revocation path.

    Why it is wrong: 7b0f009 / the README promise "never before the new key's api_key.issued has reached the
    upstream"; the cap path is exactly where rotations pile up while delivery is down (each waiting key stays live).

    Suggested fix: under the cap, revoke first a rotated-out key the upstream never received (an undelivered
    intermediate, here key #1: nobody can hold it), or pass ``successor`` on the cap path too and wait (the new
    generation is issued later); never revoke the newest delivered key while no newer one is delivered.

    Likelihood: low with the default cap (five rotations during one receiver outage), moderate with a cap of 2 or 3;
    impact: the customer's trading stops until the receiver is back.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        PROVISIONER_WEBHOOK_URL="http://upstream.test/hooks",
        PROVISIONER_WEBHOOK_SECRET=SECRET,
        PROVISIONER_ROTATION_GRACE_SECONDS="3600",
        PROVISIONER_MAX_LIVE_KEYS="2",
    )
    upstream = Upstream(rig)
    dispatcher = build_dispatcher(
        rig.settings, rig.app.redis, transport=httpx.MockTransport(upstream), clock=rig.clock, draw=lambda: 0.0
    )
    assert dispatcher is not None
    try:
        ref, _ = onboard_with_a_key(rig, "cap-outage")
        dispatcher.drain()
        first = rig.record(ref).live_keys[0].api_key
        assert first in upstream.issued()

        upstream.up = False
        rotate = events_for("cap-outage")["rotate"]
        second = copy.deepcopy(rotate)
        second["id"] = "cap-outage-rotation-2"
        rig.publish(rotate)
        with contextlib.suppress(AssertionError):
            rig.settle(ref, max_rounds=3, after_run=dispatcher.run_once)
        assert len(rig.record(ref).live_keys) == 2, "key #1 issued, key #0 kept"
        rig.clock.advance_ms(600_000)
        rig.publish(second)
        for _ in range(6):
            with contextlib.suppress(AssertionError):
                rig.settle(ref, max_rounds=3, after_run=dispatcher.run_once)
            rig.clock.advance_ms(600_000)

        keys = {k.api_key: k for k in rig.record(ref).keys}
        held = set(upstream.issued())
        assert len(keys) >= 2, "the rig issued at least key #1"
        usable = [k for k, rec in keys.items() if rec.revoked_at_ms is None and k in held]
        assert usable, (
            f"no live key the upstream holds: {first} revoked at {keys[first].revoked_at_ms}, live "
            f"{[k for k, r in keys.items() if r.revoked_at_ms is None]} never delivered"
        )
    finally:
        rig.close()
