"""fcbea66 sets ``{p}:wh:recording_since`` only where a dispatcher's cursor was already there (an upgrade). The
README's known limit still promises the other case 1e1fa33 fixed — "webhooks switched on after a stream consumer
took its ``api_key.issued``" counts as delivered at the first run — but with no cursor ``recording_since`` is ``0``:
the successor is never seen delivered and the rotated-out key stays live until the next rotation."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from tests.adversarial.helpers import onboard_with_a_key
from tests.adversarial18.test_a_rotated_out_key_is_revoked_before_its_successor_is_delivered import SECRET, Upstream
from tests.core.harness import Rig, events_for, settings_for
from tests.core.test_lost_state import settle_with
from worker.bootstrap import build_app
from worker.webhooks.runtime import build_dispatcher

pytestmark = pytest.mark.redis

GRACE = {"PROVISIONER_ROTATION_GRACE_SECONDS": "3600"}


def test_webhooks_switched_on_in_a_rotations_grace_keep_the_old_key_live(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: webhooks off; the upstream reads ``{p}:outbound`` with a stream consumer, which trims what it
    processed (``XTRIM MINID``, as the README asks). A customer asks for a rotation (say its key leaked): key #1 is
    issued, its ``api_key.issued`` is read and trimmed by the consumer; key #0 is in its one-hour grace. A minute
    later the operator switches webhooks on (``PROVISIONER_WEBHOOK_URL``), the README's own migration path.

    What happens: the dispatcher's first admit finds no ``{p}:wh:cursor`` (no dispatcher ever ran), so
    ``recording_since`` is set to ``0``; key #1 (issued before) is not in ``keys:delivered`` and, the cursor
    being absent, does not count as delivered at the first run. Its event is gone from the stream, so it is never
    delivered again: ``_awaits_delivery`` keeps key #0 live, waking every minute, a week later and until key #1 is
    rotated by age (90 days).

    Why it is wrong: README "Known limits" says a key "issued before the webhook dispatcher first ran (... or
    webhooks switched on after a stream consumer took its api_key.issued) counts as delivered at that first run"
    — the adv20 fix (1e1fa33) did that; fcbea66 narrowed it to the upgrade case to protect the after-a-loss case,
    re-opening adv20's second half without updating the README. A rotated-out, possibly leaked key stays valid.

    Suggested fix: tell the two "no cursor" cases apart where it is known: a wiped Redis goes through
    ``provisioner recover`` (``recovery_lost_at``/the recovered epoch), so let recover write
    ``recording_since = 0`` (or the admit script set ``now`` when no cursor *and* no recorded loss); or have the
    dispatcher treat an ``api_key.issued`` already trimmed from the stream before its first pass as delivered. At
    least correct the README limit.

    Likelihood: low (once per deployment, customers mid-rotation when webhooks are switched on); impact: a
    rotated-out key stays live up to the key's maximum age.
    """
    rig = Rig(redis_url, key_prefix, **GRACE)  # webhooks off: the stream only
    try:
        ref, _ = onboard_with_a_key(rig, "switch-on")
        old = rig.record(ref).live_keys[0].api_key
        rig.publish(events_for("switch-on")["rotate"])
        for _ in range(3):
            rig.app.reconciler.run(ref)
        new = next(k.api_key for k in rig.record(ref).live_keys if k.api_key != old)
        # the upstream's stream consumer takes everything, key #1's credentials with it, and trims it
        taken = rig.app.redis.xrange(rig.app.keys.outbound)
        assert any(new in str(fields) for _, fields in taken), "key #1's api_key.issued reached the stream consumer"
        last = taken[-1][0]
        rig.app.redis.xtrim(rig.app.keys.outbound, minid=f"{int(str(last).split('-')[0]) + 1}-0")
        rig.clock.advance_ms(60_000)

        # a minute later webhooks are switched on (a restart with PROVISIONER_WEBHOOK_URL)
        settings = settings_for(
            redis_url,
            key_prefix,
            PROVISIONER_WEBHOOK_URL="http://upstream.test/hooks",
            PROVISIONER_WEBHOOK_SECRET=SECRET,
            **GRACE,
        )
        app = build_app(settings, transport=rig.transport, clock=rig.clock)
        upstream = Upstream(rig)
        dispatcher = build_dispatcher(
            settings, app.redis, transport=httpx.MockTransport(upstream), clock=rig.clock, draw=lambda: 0.0
        )
        assert dispatcher is not None
        try:
            for _ in range(7 * 24):  # a week, an hour at a time
                with contextlib.suppress(AssertionError):
                    settle_with(rig, app, ref, rounds=3)
                dispatcher.run_once()
                rig.clock.advance_ms(3_600_000)
            record = app.store.load(ref)
            revoked_at = next(k.revoked_at_ms for k in record.keys if k.api_key == old)
            assert revoked_at is not None, (
                f"a week after webhooks were switched on, the rotated-out key {old} is still live: its successor "
                f"{new} reached the upstream through the stream before (recording_since="
                f"{app.redis.get(app.keys.webhook_recording_since)!r})"
            )
        finally:
            app.close()
    finally:
        rig.close()
