"""A key whose secret we lost is "replaced and revoked, not maintained" (``_keys``' update loop skips
``sealed=None``). Since 7b0f009 such a key stays live until its replacement's ``api_key.issued`` is *delivered*
(plus the grace) — for a receiver outage, days — and all that time it is the key the upstream uses, with the
whitelist it had at the loss: a ``customer.ip_changed`` never reaches it."""

from __future__ import annotations

import contextlib
import shutil

import httpx
import pytest

from tests.adversarial18.test_a_rotated_out_key_is_revoked_before_its_successor_is_delivered import SECRET, Upstream
from tests.core.harness import Rig
from tests.core.test_lost_state import LIFECYCLE, lose_everything, provisioned, redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover
from worker.webhooks.runtime import build_dispatcher

pytestmark = pytest.mark.redis

NEW_IPS = ["198.51.101.9"]


def test_an_ip_change_after_a_loss_misses_the_key_the_upstream_still_uses(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: webhooks on. A customer's key #0 (whitelist 198.51.101.7, .8) is delivered. The upstream's receiver
    goes down; Redis restarts without persistence; ``provisioner recover``, re-publication, declaration. Then the
    upstream publishes ``customer.ip_changed`` to ``198.51.101.9`` only (its servers moved, or .7/.8 were
    compromised). The receiver stays down for two hours.

    What happens: the audit records key #0 with ``sealed=None`` and issues key #1, with the new whitelist; its
    ``api_key.issued`` waits for the receiver, so key #0 rightly stays live (its successor is undelivered). But the
    update loop in ``_keys`` skips every key whose secret is lost ("replaced and revoked, not maintained"): key #0,
    the only key the upstream holds, keeps whitelisting 198.51.101.7 and .8 at KuCoin for the whole outage (up to
    the three-day retry horizon, then a dead letter until an operator replays it) plus the grace. The customer can
    neither trade from its new address nor stop trading from the removed ones.

    Why it is wrong: README, ``customer.ip_changed``: "the live key's whitelist equals the newest list"; key #0 is
    live on the exchange and is the one in use. "Not maintained" dates from 107e3a5, when a lost key lived at most
    one grace after its replacement's issue; 7b0f009/947e22b made its life as long as the replacement's delivery
    takes, so the skip now leaves an unbounded window. Normal rotations do maintain a rotated-out key in its grace.

    Suggested fix: maintain every live key, held secret or not (Modify SubAccount API needs only the api key, and
    is a whole replacement); the ``sealed is None`` skip in ``_keys``' update loop can go.

    Likelihood: low (a loss of our state, a receiver outage and an IP change in the same window; without the
    outage the window is one grace); impact: an IP removal — the customer's defence for a leaked key — is not
    applied to the key in use for hours to days.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        PROVISIONER_WEBHOOK_URL="http://upstream.test/hooks",
        PROVISIONER_WEBHOOK_SECRET=SECRET,
        PROVISIONER_ROTATION_GRACE_SECONDS="3600",
    )
    upstream = Upstream(rig)
    transport = httpx.MockTransport(upstream)
    dispatcher = build_dispatcher(rig.settings, rig.app.redis, transport=transport, clock=rig.clock, draw=lambda: 0.0)
    assert dispatcher is not None
    try:
        ref, ev = provisioned(rig, "lost-whitelist")
        dispatcher.drain()
        (first,) = rig.record(ref).live_keys
        assert first.api_key in upstream.issued(), "key #0 reached the upstream"

        upstream.up = False  # the receiver's outage begins
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev[name] for name in LIFECYCLE])
            declare_republished(app)
            moved = {**ev["ip"], "id": "lost-whitelist-ip-2", "occurred_at": "2026-11-18T10:05:00Z"}
            moved["data"] = {"ip_whitelist": NEW_IPS}
            redeliver(app, [moved])
            after = build_dispatcher(app.settings, app.redis, transport=transport, clock=rig.clock, draw=lambda: 0.0)
            assert after is not None
            for _ in range(12):  # two hours of the outage
                with contextlib.suppress(AssertionError):
                    settle_with(rig, app, ref, rounds=5)
                after.run_once()
                rig.clock.advance_ms(600_000)

            assert set(upstream.issued()) == {first.api_key}, "nothing newer reached the upstream yet"
            live = {k["apiKey"]: sorted(k["ipWhitelist"]) for k in rig.state()["apiKeys"] if k["deletedAt"] is None}
            assert first.api_key in live, "key #0 is kept live while its replacement waits undelivered"
            stale = {api_key: ips for api_key, ips in live.items() if ips != NEW_IPS}
            assert not stale, (
                f"two hours after customer.ip_changed to {NEW_IPS}, live keys still whitelist other addresses: "
                f"{stale} (key #0, {first.api_key}, is the only key the upstream holds)"
            )
        finally:
            app.close()
    finally:
        rig.close()
