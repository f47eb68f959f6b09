"""Whether a rotated-out key waits for its successor's delivery is decided by the *process's* setting
(``bootstrap``: ``key_delivered_at=... if settings.webhook_url else None``), not by the deployment's state: a process
started without ``PROVISIONER_WEBHOOK_URL`` plans revocations as if webhooks were off. ``provisioner customer retry``
runs the reconcile in the operator's own process (``cli/customer_cmd.retry``: ``app.reconciler.run``), with the
settings of "the shell you operate from" (README, "An incident"), which has no reason to carry the webhook URL and
its secret: the operator's retry revokes the key the upstream still uses while its successor was never
delivered."""

from __future__ import annotations

import pytest

from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for
from worker.bootstrap import build_app
from worker.webhooks.store import DeliveryStore

pytestmark = pytest.mark.redis

GRACE_S = 60


def test_customer_retry_from_an_operators_shell_revokes_the_key_the_upstream_still_holds(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: webhooks on (``PROVISIONER_WEBHOOK_URL`` set on the workers; grace 60 s). A customer approved with a
    1 500 USDT line over the 1 000 USDT per-customer cap (refused, as in the README's incident) holds key #0,
    delivered. The upstream asks for a rotation: key #1 is issued; its ``api_key.issued`` cannot be delivered (the
    receiver is down; the workers' dispatcher keeps passing, nothing is recorded delivered). Past the grace the workers
    rightly keep key #0 live ("key #1's api_key.issued has not reached the upstream yet"). Risk agrees to the amount
    and the on-call follows the README: raises the cap in the workers and in "the shell you operate from", and runs
    ``provisioner customer retry`` there — a shell with the Redis, KuCoin and encryption settings the command
    needs, but not the webhook URL and secret (nothing the command does sends a webhook).

    What happens: the operator's process builds its app with ``key_delivered_at=None``; its reconcile re-decides
    and pays the line, then plans ``RevokeApiKey(key #0, reason="rotated")`` — the grace is over and, for this
    process, deliveries are "not ours to see" — and sends it. Key #0 is deleted at KuCoin and ``api_key.revoked``
    queued behind the undelivered ``api_key.issued``.

    Why it is wrong: README, ``customer.key_rotation_requested``: "with webhooks, the grace runs from the moment the
    new key's ``api_key.issued`` reached the upstream: a receiver down for longer than the grace keeps the old key
    live until the new one has arrived and the grace has passed". Here the customer's bot loses its only working
    key while the replacement's secret sits undelivered: it cannot trade until the receiver is back — the outage
    the rule exists to bridge. (The same holds for any worker host whose environment lacks the URL.)

    Suggested fix: decide from the deployment, not the process: wait for deliveries whenever Redis shows they are
    recorded (``{p}:wh:recording_since`` exists, or the customer's lane / delivered-keys hash does), or have
    ``build_app`` wire ``DeliveryStore.key_delivered_at`` unconditionally and let ``key_delivered_at`` answer
    "delivered at issue" only where the deployment never recorded deliveries; at least, refuse a reconcile from a
    process whose webhook setting disagrees with the state.

    Likelihood: medium-low: an operator's ``customer retry`` (or ``settle-transfer``'s follow-up, a worker host
    with a drifted environment) on a customer mid-rotation while the receiver is down; impact: the upstream's only
    delivered key revoked, the customer locked out of trading until the webhook backlog drains.
    """
    workers = dict(
        PROVISIONER_WEBHOOK_URL="http://127.0.0.1:9/provisioner",
        PROVISIONER_ROTATION_GRACE_SECONDS=str(GRACE_S),
    )
    rig = Rig(redis_url, key_prefix, **workers)
    try:
        ev = events_for("operator-shell", funding=(("USDT", "1500"),))
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref)
        assert outbound_of(rig, "funding.refused"), "precondition: the line is refused by the per-customer cap"
        (first,) = [k.api_key for k in rig.record(ref).live_keys]

        rig.publish(ev["rotate"])
        rig.settle(ref, horizon_ms=1_000)
        rig.clock.advance_ms(10 * GRACE_S * 1000)
        rig.settle(ref, horizon_ms=1_000)
        live = [k.api_key for k in rig.record(ref).live_keys]
        assert first in live and len(live) == 2, "precondition: the workers keep key #0 until key #1 is delivered"

        # the workers' dispatcher runs all along (the receiver is down: it admits, tries and fails, and passes again)
        DeliveryStore(rig.app.redis, rig.app.keys).admit(int(rig.clock() * 1000))

        # `provisioner customer retry operator-shell` from the on-call's shell: the cap raised there too, the
        # webhook URL not set (the CLI builds its app from the environment it runs in, as here)
        shell = rig.settings.model_copy(
            update={
                "webhook_url": None,
                "funding_cap_per_customer": {**rig.settings.funding_cap_per_customer, "USDT": 2000},
            }
        )
        operator = build_app(shell, transport=rig.transport, clock=rig.clock)
        try:
            operator.reconciler.run(ref, retry_blocked=True)
        finally:
            operator.close()

        assert outbound_of(rig, "funding.completed"), "precondition: the retry paid the line"
        still = {k["apiKey"] for k in rig.state()["apiKeys"] if k.get("deletedAt") is None}
        assert first in still, (
            "the operator's retry revoked key #0, the only key the upstream has received, while key #1's "
            f"api_key.issued was never delivered; revocations told: {outbound_of(rig, 'api_key.revoked')}"
        )
    finally:
        rig.close()
