"""947e22b: "a successor whose secret we lost is not waited for". The key it took over from is then revoked on
the lost key's *issue* grace, whether or not anything the upstream holds is left live: when the lost key never
reached the upstream (its ``api_key.issued`` waited in a lane the loss wiped), the upstream's only key is revoked
while the replacement waits undelivered."""

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


def test_a_lost_secret_successor_that_never_arrived_leaves_the_upstream_without_a_key(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: webhooks on, the default cap (5). A customer's key #0 is delivered. The upstream's receiver goes
    down (answers 503); the upstream asks for a rotation; key #1 is issued, its ``api_key.issued`` waits in the
    lane, and key #0 rightly stays live (7b0f009: its successor is undelivered). Ninety minutes into the outage
    Redis restarts without persistence; ``provisioner recover`` runs, the upstream re-publishes, the on-call
    declares it. The receiver is still down for another hour.

    What happens: the audit records keys #0 and #1 from the listing with ``sealed=None`` and raises the wanted
    generation to #2, which is issued (its ``api_key.issued`` queued behind the outage). For key #0 the planner's
    successor is key #1 (``_successor``: the oldest newer live key); key #1 has no held secret, so
    ``_awaits_delivery`` answers "do not wait" and key #0 is revoked at once — key #1's *issue* grace (one hour)
    is long over. Key #1 never reached the upstream (its api_key.issued died with Redis) and key #2 has not either:
    the upstream holds key #0 only, which is now deleted at KuCoin. Key #1, on the other hand, is kept live waiting
    for key #2's delivery although nobody holds its secret.

    Why it is wrong: the adv18 guarantee (README rotation row: the old key is revoked a grace after its successor
    reached the upstream) is broken by the path 947e22b added; the audit's own docstring says a key whose secret is
    lost "is kept live until its replacement is issued and delivered". After a loss we do not know which of the
    lost keys the upstream holds, so each must wait for a key we can deliver. The cap path has the same hole, and
    worse: at the cap, an oldest key whose ``taken_over`` is lost is revoked at once, before the replacement is even
    issued (no grace at all).

    Suggested fix: when choosing the key a rotated-out key waits for, look through lost-secret keys: the successor
    is the oldest newer live key with a held secret (``sealed is not None``); none yet → keep waiting (the wanted
    generation is being issued). ``_awaits_delivery`` then never sees a ``sealed=None`` successor.

    Likelihood: low-moderate (a loss of Redis while a rotation waits on a receiver outage — the case the delivery
    wait exists for; the chaos run's default restarts Redis without persistence); impact: the customer cannot
    trade for the rest of the outage (up to three days of retries, or until a dead letter is replayed).
    """
    settings = {
        "PROVISIONER_WEBHOOK_URL": "http://upstream.test/hooks",
        "PROVISIONER_WEBHOOK_SECRET": SECRET,
        "PROVISIONER_ROTATION_GRACE_SECONDS": "3600",
    }
    rig = Rig(redis_url, key_prefix, **settings)
    upstream = Upstream(rig)
    transport = httpx.MockTransport(upstream)
    dispatcher = build_dispatcher(rig.settings, rig.app.redis, transport=transport, clock=rig.clock, draw=lambda: 0.0)
    assert dispatcher is not None
    try:
        ref, ev = provisioned(rig, "lost-undelivered")
        dispatcher.drain()
        (first,) = rig.record(ref).live_keys
        assert first.api_key in upstream.issued(), "key #0 reached the upstream"

        upstream.up = False  # the receiver's outage begins
        rig.publish(ev["rotate"])
        for _ in range(9):  # ninety minutes of outage: key #1 issued, undelivered; key #0 kept for it
            with contextlib.suppress(AssertionError):
                rig.settle(ref, max_rounds=3, after_run=dispatcher.run_once)
            rig.clock.advance_ms(600_000)
        before = rig.record(ref)
        assert len(before.live_keys) == 2, "key #1 issued, key #0 waiting for its delivery"
        assert set(upstream.issued()) == {first.api_key}, "only key #0 reached the upstream"

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev[name] for name in (*LIFECYCLE, "rotate")])
            declare_republished(app)
            after = build_dispatcher(app.settings, app.redis, transport=transport, clock=rig.clock, draw=lambda: 0.0)
            assert after is not None
            for _ in range(6):  # one more hour of the outage
                with contextlib.suppress(AssertionError):
                    settle_with(rig, app, ref, rounds=5)
                after.run_once()
                rig.clock.advance_ms(600_000)

            record = app.store.load(ref)
            assert record is not None
            assert any(k.generation >= 2 and k.live for k in record.keys), "the replacement was issued"
            holds = set(upstream.issued())
            usable = [k.api_key for k in record.live_keys if k.api_key in holds]
            assert usable, (
                f"the upstream holds {sorted(holds)} only; live now: "
                f"{[(k.generation, k.api_key, k.sealed is not None) for k in record.live_keys]}; "
                f"key #0 revoked at {next(k.revoked_at_ms for k in record.keys if k.api_key == first.api_key)} "
                "while its replacement waits undelivered"
            )
        finally:
            app.close()
    finally:
        rig.close()
