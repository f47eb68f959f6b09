"""7b0f009's delivery wait is a step that ends the run (``RateLimitedError``) every time the planner returns it, and
``plan`` puts ``_keys`` before ``_confirm``: while a rotated-out key waits for its successor's delivery, the
customer's accepted transfers are never confirmed (their final status never read, a failed one never re-sent)."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, topup
from tests.adversarial18.test_a_rotated_out_key_is_revoked_before_its_successor_is_delivered import SECRET, Upstream
from tests.core.harness import Rig, events_for
from worker.webhooks.runtime import build_dispatcher

pytestmark = pytest.mark.redis


def test_a_key_waiting_for_delivery_holds_back_a_failed_transfers_resend(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: webhooks on, grace one hour. The upstream's webhook receiver goes down; the upstream asks for a key
    rotation, then (via the API, which does not depend on the receiver) for a 100 USDT top-up. The exchange accepts
    the transfer (an orderId) and, ten minutes later, shows it FAILURE (moved nothing: simulator
    ``transfer_failure_share=1``). The receiver stays down for six hours (the dispatcher retries for three days, then
    dead-letters until ``provisioner webhooks retry``).

    What happens: after the grace, every run of the customer plans ``RevokeApiKey(successor=...)`` first
    (``_keys`` precedes ``_confirm``) and ends rate limited (``webhook_delivery``) before anything else: the
    transfer stays ``accepted`` — counted as money moved for every cap, never re-sent — for as long as the receiver
    is down. Six hours later the customer has received nothing, and the exchange showed FAILURE after ten minutes.

    Why it is wrong: the wait concerns one key's revocation; 7b0f009 calls it "a wait of its own", yet it blocks
    every concern planned after keys (confirmation, the second-payment search, age rotation). Funding has nothing to
    do with the webhook receiver: the upstream reads the view through the API.

    Suggested fix: let the planner skip a rotated-out key whose successor is undelivered (pass the delivered set
    into planning, or record the wait on the key and ``p.wake`` instead of returning the step), so later concerns
    still run; or order ``_confirm`` before ``_keys``.

    Likelihood: moderate whenever a rotation meets a receiver outage longer than the grace and the customer has a
    transfer in flight; impact: funding delayed for the whole outage, the caps counting money that never moved.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"transfer_failure_share": 1.0, "transfer_processing_ms": 600_000}),
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
        ref, uid = onboard_with_a_key(rig, "stall")
        dispatcher.drain()
        upstream.up = False
        rig.publish(events_for("stall")["rotate"])
        with contextlib.suppress(AssertionError):
            rig.settle(ref, max_rounds=3, after_run=dispatcher.run_once)
        rig.clock.advance_ms(3_700_000)  # the grace is over: the old key now waits for the new one's delivery
        rig.publish(topup("stall", "topup", 5, [("USDT", "100")]))
        for _ in range(36):  # six hours of receiver outage
            with contextlib.suppress(AssertionError):
                rig.settle(ref, max_rounds=3, after_run=dispatcher.run_once)
            rig.clock.advance_ms(600_000)

        orders = [t for t in rig.state()["transfers"] if t["specialUid"] == uid and t["direction"] == "OUT"]
        assert orders and all(t["status"] == "FAILURE" for t in orders), f"the rig sent and failed it: {orders}"
        line = rig.record(ref).transfers.get("stall-topup#0")
        assert line is None or line.status != "accepted" or paid_to(rig, uid), (
            f"six hours after the exchange showed FAILURE the line is still {line and line.status}, never re-read: the "
            "rotated-out key's delivery wait runs before every confirmation"
        )
    finally:
        rig.close()
