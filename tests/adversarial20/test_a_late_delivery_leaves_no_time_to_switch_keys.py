"""7b0f009/76eab75: a rotated-out key is revoked once its successor's grace *from issue* is over and its
``api_key.issued`` was delivered. When the delivery comes after the grace, the old key is revoked at the next
reconcile after it (within ``DELIVERY_POLL_MS``): the upstream has about a minute, not the grace, to move the
customer to a key it has only just received."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from tests.adversarial.helpers import onboard_with_a_key
from tests.adversarial18.test_a_rotated_out_key_is_revoked_before_its_successor_is_delivered import SECRET, Upstream
from tests.core.harness import Rig, events_for
from worker.webhooks.runtime import build_dispatcher

pytestmark = pytest.mark.redis

GRACE_S = 3600


def test_a_successor_delivered_after_the_grace_gets_no_grace(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: webhooks on, grace one hour (the default). A customer's key is delivered. The upstream's webhook
    receiver is down for two hours; meanwhile the upstream asks for a rotation (through the API). The receiver
    comes back; the dispatcher delivers the backlog, ``api_key.issued`` of the new key included.

    What happens: the new key's grace ran from its *issue*, so it is long over; the old key only waited for the
    delivery. At the customer's next wake (``DELIVERY_POLL_MS``, one minute) the reconciler asks
    ``key_delivered``, gets yes, and revokes the old key: about a minute after the upstream first saw the new
    credentials. The customer's bots still signing with the old key (the upstream has yet to decrypt, store and roll
    out the new one) get 401s; orders in flight fail.

    Why it is wrong: the grace (``PROVISIONER_ROTATION_GRACE_SECONDS``, "how long a rotated-out key stays live") is
    the upstream's time to switch to a key it *has* — adv18's point, which 7b0f009 answered with "not before
    delivery" rather than "a grace after delivery". The outage the wait exists for is exactly when the switch-over
    time shrinks to nothing. ``keys:delivered`` already stores *when* each key was delivered; ``key_delivered``
    reads it only as a yes/no.

    Suggested fix: revoke a rotated-out key at ``max(successor issue, successor delivery) + grace``:
    ``key_delivered`` returns the delivery time, the planner gets ``delivered_at`` per successor and wakes at that
    plus the grace (with webhooks off, as now, from the issue).

    Likelihood: moderate (any rotation, requested or by age, meeting a receiver outage longer than the grace);
    impact: the customer's trading interrupted at the very moment the upstream recovers.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        PROVISIONER_WEBHOOK_URL="http://upstream.test/hooks",
        PROVISIONER_WEBHOOK_SECRET=SECRET,
        PROVISIONER_ROTATION_GRACE_SECONDS=str(GRACE_S),
    )
    upstream = Upstream(rig)
    dispatcher = build_dispatcher(
        rig.settings, rig.app.redis, transport=httpx.MockTransport(upstream), clock=rig.clock, draw=lambda: 0.0
    )
    assert dispatcher is not None
    try:
        ref, _ = onboard_with_a_key(rig, "late-delivery")
        dispatcher.drain()
        old = rig.record(ref).live_keys[0].api_key
        upstream.up = False
        rig.publish(events_for("late-delivery")["rotate"])
        for _ in range(12):  # two hours of receiver outage
            with contextlib.suppress(AssertionError):
                rig.settle(ref, max_rounds=3, after_run=dispatcher.run_once)
            rig.clock.advance_ms(600_000)
        assert len(rig.record(ref).live_keys) == 2, "the old key waited for the new one's delivery"

        upstream.up = True
        for _ in range(90):  # ninety minutes after the receiver is back
            dispatcher.drain()
            rig.clock.advance_ms(60_000)
            with contextlib.suppress(AssertionError):
                rig.settle(ref, max_rounds=3, after_run=dispatcher.run_once)
        new = next(k.api_key for k in rig.record(ref).keys if k.api_key != old)
        delivered_s = upstream.issued()[new]
        revoked_at = next(k.revoked_at_ms for k in rig.record(ref).keys if k.api_key == old)
        assert revoked_at is not None, "the rig revoked the old key after the delivery"
        switch_over_s = revoked_at / 1000 - delivered_s
        assert switch_over_s >= GRACE_S, (
            f"the old key was revoked {switch_over_s:.0f} s after the upstream received the new key's credentials "
            f"(the grace is {GRACE_S} s)"
        )
    finally:
        rig.close()
