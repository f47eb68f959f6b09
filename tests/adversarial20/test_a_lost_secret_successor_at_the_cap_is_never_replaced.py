"""76eab75's cap path waits while the key that took over from the oldest live key is "undelivered"
(``Services.key_delivered``: ``{p}:c:{ref}:keys:delivered``). After a loss of our state that hash is gone, and a
key the recovery audit found on the exchange without its secret (``sealed=None``) is never issued by us again, so
it is never "delivered": the cap path waits on it for ever, and the key that should replace it is never issued."""

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


def test_a_lost_secret_successor_at_the_cap_keeps_the_customer_without_a_held_key(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: webhooks on, ``PROVISIONER_MAX_LIVE_KEYS=2`` (allowed: 2..20; with the default 5 the same needs five
    live keys at the loss, which 7b0f009 makes likelier: rotated-out keys now pile up while the receiver is down).
    A customer's key #0 is delivered; the upstream asks for a rotation; key #1 is issued and delivered, key #0 is in
    its grace. Redis then restarts without persistence (everything of ours is gone, ``keys:delivered`` included);
    ``provisioner recover`` runs, the upstream re-publishes, the on-call declares it, the receiver is up throughout.

    What happens: the audit records both keys from the exchange's listing with ``sealed=None`` (secrets lost) and
    raises the wanted generation to #2. ``_keys`` is at the cap (2 live): it would make room by revoking key #0, but
    the key that took over from it, key #1, is not in ``keys:delivered`` (the hash was lost, and we never emit its
    ``api_key.issued`` again), so ``_awaits_delivery`` says wait and ``break``s: no revocation, no ``IssueApiKey``.
    The revocation loop skips key #0 for the same reason and key #1 has no successor. Every minute the customer is
    woken to ask the same question again, for ever: six hours later no live key has a secret we hold, and the
    rotation the upstream asked for (maybe for a leaked key) never happens.

    Why it is wrong: the README promises "a key whose secret is lost is replaced, then revoked"; verify fails ("every
    live key's secret is held") for ever; the wait is for an event that cannot come.

    Suggested fix: a successor without a held secret (``sealed is None``) is no successor to wait for — its delivery
    is unknowable; under the cap revoke the lost-secret intermediate first (or skip to the next key instead of
    ``break``), issue the wanted key, and let the old keys wait on *its* delivery.

    Likelihood: low (a loss of Redis during a rotation's grace, at the cap); impact: the customer is never moved to
    a key we hold, the requested rotation never happens, a wake every minute for ever.
    """
    settings = {
        "PROVISIONER_WEBHOOK_URL": "http://upstream.test/hooks",
        "PROVISIONER_WEBHOOK_SECRET": SECRET,
        "PROVISIONER_ROTATION_GRACE_SECONDS": "3600",
        "PROVISIONER_MAX_LIVE_KEYS": "2",
    }
    rig = Rig(redis_url, key_prefix, **settings)
    upstream = Upstream(rig)
    transport = httpx.MockTransport(upstream)
    dispatcher = build_dispatcher(rig.settings, rig.app.redis, transport=transport, clock=rig.clock, draw=lambda: 0.0)
    assert dispatcher is not None
    try:
        ref, ev = provisioned(rig, "lost-cap")
        dispatcher.drain()
        rig.publish(ev["rotate"])
        for _ in range(3):  # no time passes: key #0 is still in its grace at the loss
            rig.app.reconciler.run(ref)
        dispatcher.drain()
        before = rig.record(ref)
        assert len(before.live_keys) == 2, "key #1 issued, key #0 in its grace"
        assert all(k.api_key in upstream.issued() for k in before.live_keys), "both delivered before the loss"

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev[name] for name in (*LIFECYCLE, "rotate")])
            declare_republished(app)
            after = build_dispatcher(app.settings, app.redis, transport=transport, clock=rig.clock, draw=lambda: 0.0)
            assert after is not None
            for _ in range(36):  # six hours, the receiver up throughout
                with contextlib.suppress(AssertionError):
                    settle_with(rig, app, ref, rounds=5)
                after.drain()
                rig.clock.advance_ms(600_000)

            record = app.store.load(ref)
            assert record is not None
            live = record.live_keys
            assert [k for k in record.keys if k.sealed is None], "the audit found the keys without their secrets"
            held = [k.api_key for k in live if k.sealed is not None]
            assert held, (
                f"six hours after recovery no live key has a secret we hold: live {[k.api_key for k in live]} "
                f"(generations {[k.generation for k in live]}), wanted generation "
                f"{record.age_rotations + 1}, blocked {sorted(record.blocked)}; the cap path waits for the "
                "delivery of a lost-secret key"
            )
        finally:
            app.close()
    finally:
        rig.close()
