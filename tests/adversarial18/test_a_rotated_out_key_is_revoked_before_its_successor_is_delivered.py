"""A rotation's grace runs from the new key's *issue*, not its *delivery*: while the upstream's webhook receiver is
down (the dispatcher retries for three days), the old key is revoked an hour later, before the upstream ever got
the new key's credentials."""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest

from tests.adversarial.helpers import onboard_with_a_key
from tests.core.harness import Rig, events_for
from worker.webhooks.runtime import build_dispatcher

pytestmark = pytest.mark.redis

SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcy0hIQ=="


class Upstream:
    """The upstream's webhook receiver: answers 2xx while up, 503 while down; keeps what it received, and when."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.up = True
        self.received: list[tuple[float, dict[str, object]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            return httpx.Response(503)
        self.received.append((self.rig.clock(), json.loads(request.content)))
        return httpx.Response(204)

    def issued(self) -> dict[str, float]:
        return {str(e["api_key"]): at for at, e in self.received if e["type"] == "api_key.issued"}


def test_a_rotated_out_key_is_revoked_before_its_successor_reaches_the_upstream(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: a customer has a live key, delivered. The upstream's webhook receiver goes down (a deploy gone wrong,
    an expired TLS certificate, a database outage answered 503) — the case the dispatcher's three-day retry horizon
    exists for. Meanwhile the upstream asks for a key rotation (``customer.key_rotation_requested``, accepted by the
    API as usual). Two hours later the receiver is back and the dispatcher delivers the backlog.

    What happens: the worker issues the new key at once and emits ``api_key.issued`` (it waits in the lane, the
    receiver answering 503); one hour later (``PROVISIONER_ROTATION_GRACE_SECONDS``) it revokes the old key. For
    the rest of the outage the customer has no key it can use: the old one is deleted at KuCoin and the new one's
    credentials have not reached the upstream. Were the outage longer than three days, ``api_key.issued`` would
    become a delivery dead letter and the customer would stay locked out until an operator replays it.

    Why it is wrong: the README promises "a new key is issued and delivered; the old one is revoked after a grace
    period" — the grace is the upstream's time to switch to a key it *has*. The planner starts it from
    ``successor.created_at_ms`` and never looks at whether the successor's ``api_key.issued`` was delivered; the
    recovery path says the same ("kept live until its replacement is issued and delivered", audit_steps).

    Suggested fix: start the grace when the successor's ``api_key.issued`` is delivered (the dispatcher's
    ``delivered`` report can record the delivery time on the customer, or make the customer due; with webhooks
    off, when the event is appended), and revoke a rotated-out key only after that plus the grace. Alert when a
    rotation waits on an undelivered key beyond the grace.

    Likelihood in production: moderate: receiver outages longer than an hour happen, and rotations (requested, and
    by age) are routine; impact: a customer's trading stops for the rest of the outage.
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
        ref, _ = onboard_with_a_key(rig, "rotation-outage")
        dispatcher.drain()
        old = rig.record(ref).live_keys[0].api_key
        assert old in upstream.issued(), "the first key reached the upstream"

        upstream.up = False  # the receiver's outage begins
        rig.publish(events_for("rotation-outage")["rotate"])
        for _ in range(12):  # two hours of outage, the grace (one hour) long over
            with contextlib.suppress(AssertionError):  # the customer stays due: it waits for the delivery
                rig.settle(ref, max_rounds=3, after_run=dispatcher.run_once)
            rig.clock.advance_ms(600_000)
        keys = {k.api_key: k for k in rig.record(ref).keys}
        assert keys[old].revoked_at_ms is None, "the old key is kept while its successor's credentials wait"
        new = next(k for k in keys if k != old)
        assert new not in upstream.issued()

        upstream.up = True  # the outage ends
        for _ in range(20):
            dispatcher.drain()
            rig.clock.advance_ms(60_000)
            with contextlib.suppress(AssertionError):
                rig.settle(ref, max_rounds=3, after_run=dispatcher.run_once)
        issued = upstream.issued()
        assert new in issued, "the rig delivered the new key once the receiver was back"
        revoked_at = next(k.revoked_at_ms for k in rig.record(ref).keys if k.api_key == old)
        assert revoked_at is not None, "the old key is revoked once the new one was delivered"
        assert issued[new] * 1000 <= revoked_at, (
            f"the old key was revoked at {revoked_at} ms, {(issued[new] * 1000 - revoked_at) / 60_000:.0f} minutes "
            "before the upstream received the new key's credentials: no usable key in between"
        )
    finally:
        rig.close()
