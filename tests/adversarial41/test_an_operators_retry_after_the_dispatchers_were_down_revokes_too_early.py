"""a2121fc/0177064 decide whether a process without ``PROVISIONER_WEBHOOK_URL`` (an operator's ``customer retry``)
waits for a successor's delivery from ``{p}:wh:dispatching``, a key every dispatcher pass sets with a ten-minute
time-to-live. Ten minutes without a pass is read as "this deployment delivers no webhooks" (``DELIVERY_UNTRACKED``):
the rotation goes on as planned. But the dispatchers live in the worker processes, and ten minutes without them is
an outage of the workers — precisely when an on-call reaches for ``provisioner customer retry`` — not a deployment
that switched webhooks off. Redis still shows webhooks on (``{p}:wh:recording_since``, the lanes, the undelivered
``api_key.issued`` of the successor at the head of the customer's lane)."""

from __future__ import annotations

import pytest

from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for
from worker.bootstrap import build_app
from worker.webhooks.store import DeliveryStore

pytestmark = pytest.mark.redis

GRACE_S = 60


def test_customer_retry_while_the_workers_are_down_revokes_the_only_key_the_upstream_holds(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: webhooks on (the workers carry ``PROVISIONER_WEBHOOK_URL``; grace 60 s). A customer whose 1 500 USDT
    line was refused by the 1 000 USDT cap holds key #0. A rotation is asked: key #1 is issued, its
    ``api_key.issued`` cannot be delivered (the receiver is down); the workers rightly keep key #0 live. Then the
    worker fleet goes down (a bad deploy crash-looping, a node pool drained, the workers halted for a state check)
    and stays down for eleven minutes; no dispatcher passes, ``{p}:wh:dispatching`` expires. The on-call, working
    the incident from their shell (Redis, KuCoin and encryption settings; no webhook URL or secret — nothing the CLI
    does sends a webhook), raises the cap and runs ``provisioner customer retry`` for the customer, as the README's
    incident section says.

    What happens: ``key_delivered_at(..., webhooks_here=False)`` finds no ``{p}:wh:dispatching`` and answers
    ``DELIVERY_UNTRACKED``: the reconciler lets ``RevokeApiKey(key #0, "rotated")`` go as planned. Key #0 — the
    only key the upstream has received — is deleted at KuCoin while key #1's ``api_key.issued`` still waits at the
    head of the customer's lane.

    Why it is wrong: README (``customer.key_rotation_requested``): "with webhooks ... a receiver down for longer
    than the grace keeps the old key live until the new one has arrived and the grace has passed". Redis says
    plainly that this deployment delivers webhooks (``{p}:wh:recording_since`` is set, the customer's lane holds the
    undelivered event); the absence of a heartbeat only says the workers are down. The customer's bot is locked
    out until the workers and the receiver are back.

    Suggested fix: treat "no dispatcher seen" as "webhooks off" only when nothing is waiting for one: e.g. wait
    while the customer's lane (``{p}:wh:lane:<ref>``) or the outbound stream past ``{p}:wh:cursor`` holds the
    successor's ``api_key.issued``, or while ``{p}:wh:recording_since`` exists (cleared by an explicit
    ``provisioner webhooks off``); or refuse ``customer retry`` from a process whose webhook setting is unknown
    while the deployment's is.

    Likelihood: low-medium (an operator's retry during a worker outage of more than ten minutes, on a customer
    mid-rotation whose receiver is down); impact: the upstream's only working key revoked.
    """
    workers = dict(
        PROVISIONER_WEBHOOK_URL="http://127.0.0.1:9/provisioner",
        PROVISIONER_ROTATION_GRACE_SECONDS=str(GRACE_S),
    )
    rig = Rig(redis_url, key_prefix, **workers)
    try:
        ev = events_for("workers-down", funding=(("USDT", "1500"),))
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref)
        assert outbound_of(rig, "funding.refused"), "precondition: the line is refused by the per-customer cap"
        (first,) = [k.api_key for k in rig.record(ref).live_keys]

        hooks = DeliveryStore(rig.app.redis, rig.app.keys)
        hooks.admit(int(rig.clock() * 1000))  # the workers' dispatcher passes (the receiver is down)
        rig.publish(ev["rotate"])
        rig.settle(ref, horizon_ms=1_000)
        hooks.admit(int(rig.clock() * 1000))  # key #1's api_key.issued is admitted into the lane, never delivered
        rig.clock.advance_ms(10 * GRACE_S * 1000)
        rig.settle(ref, horizon_ms=1_000)
        live = [k.api_key for k in rig.record(ref).live_keys]
        assert first in live and len(live) == 2, "precondition: the workers keep key #0 until key #1 is delivered"
        assert rig.app.redis.llen(f"{rig.app.keys.webhook_lane_prefix}{ref}") >= 1, "precondition: undelivered"

        # the worker fleet is down for eleven minutes: no dispatcher pass
        rig.clock.advance_ms(11 * 60_000)
        assert rig.app.redis.exists(rig.app.keys.webhook_recording_since), "the deployment records deliveries"

        shell = rig.settings.model_copy(
            update={
                "webhook_url": None,
                "funding_cap_per_customer": {**rig.settings.funding_cap_per_customer, "USDT": 2000},
            }
        )
        operator = build_app(shell, transport=rig.transport, clock=rig.clock)
        try:
            operator.reconciler.run(ref, retry_blocked=True)  # `provisioner customer retry workers-down`
        finally:
            operator.close()

        assert outbound_of(rig, "funding.completed"), "precondition: the retry paid the line"
        still = {k["apiKey"] for k in rig.state()["apiKeys"] if k.get("deletedAt") is None}
        assert first in still, (
            "the operator's retry revoked key #0, the only key the upstream has received, while key #1's "
            f"api_key.issued waits undelivered in its lane; revocations told: {outbound_of(rig, 'api_key.revoked')}"
        )
    finally:
        rig.close()
