"""3f95e34: ``recover`` sets ``{p}:wh:recording_since`` to 0 after a loss (nothing issued before counts as
delivered unrecorded) only ``if app.settings.webhook_url or recording_since exists``. After a loss the key is gone
with the rest of Redis, and ``provisioner recover`` runs from the on-call's shell, which — like ``customer retry``
in adv41 — has no webhook URL or secret (nothing the CLI does sends a webhook). So in a deployment *with* webhooks
the 0 is not set, and the dispatchers' first pass afterwards stamps ``recording_since`` = now: every key issued
before the loss counts as delivered at that moment — what the 0 was added to prevent."""

from __future__ import annotations

import pytest

from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything
from worker.bootstrap import build_app
from worker.recovery import recover
from worker.webhooks.store import DeliveryStore

pytestmark = pytest.mark.redis


def test_recover_from_a_shell_without_the_url_lets_pre_loss_keys_count_as_delivered(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: webhooks on (the workers carry ``PROVISIONER_WEBHOOK_URL``). A customer's key is issued; its
    ``api_key.issued`` waits in its lane (receiver down). Redis loses everything. The on-call runs ``provisioner
    recover`` from a shell with Redis/KuCoin/encryption settings but no webhook URL (the CLI sends no webhook).
    The workers start; their dispatcher passes.

    What happens: ``recover`` sees no URL and no ``recording_since`` (lost) and leaves it unset; the dispatcher's
    first pass sets it to now (``SET NX``). ``key_delivered_at`` for the key issued before the loss answers
    "delivered at that pass" instead of ``None``: a rotation's predecessor is revoked a grace after it although
    the upstream may never have received its successor's credentials.

    Why it is wrong: the very case the 0 covers ("no key issued before counts as delivered unrecorded") is decided
    by the operator's shell environment, not by the deployment; README's recovery runbook runs ``recover`` from a
    shell. The upstream may be left without a working key (a lost secret in effect).

    Suggested fix: decide from the deployment, not the process: keep a durable marker that webhooks are on
    outside what a loss takes (the host mirror, as the epoch; or ask ``recover --webhooks on|off`` explicitly and
    refuse without it when the mirror/settings cannot tell), or have the dispatcher never ``SET NX`` a fresh
    moment in a recovered epoch (set 0 there instead).

    Likelihood: medium-high for any webhook deployment that ever recovers (operators' shells rarely carry the
    webhook secret); impact: premature revocation of a key the upstream relies on.
    """
    workers = dict(PROVISIONER_WEBHOOK_URL="http://127.0.0.1:9/provisioner")
    rig = Rig(redis_url, key_prefix, **workers)
    try:
        hooks = DeliveryStore(rig.app.redis, rig.app.keys)
        hooks.admit(int(rig.clock() * 1000))
        ev = events_for("wh-recover")
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref)
        (key,) = rig.record(ref).live_keys
        hooks.admit(int(rig.clock() * 1000))  # its api_key.issued is admitted, never delivered (receiver down)
        assert hooks.key_delivered_at(ref, key.api_key, key.created_at_ms) is None, "precondition: not delivered"

        rig.clock.advance_ms(60_000)
        lose_everything(rig)
        no_url = rig.settings.model_copy(update={"webhook_url": None})  # the on-call's shell
        shell = build_app(no_url, transport=rig.transport, clock=rig.clock)
        try:
            recover(shell, reason="Redis lost everything")
        finally:
            shell.close()
        rig.clock.advance_ms(1_000)
        hooks.admit(int(rig.clock() * 1000))  # the workers' dispatcher, first pass after the recovery

        answer = hooks.key_delivered_at(ref, key.api_key, key.created_at_ms)
        assert answer is None, (
            f"a key issued before the loss, whose api_key.issued was never delivered, counts as delivered at {answer}"
            f" (recording_since={rig.app.redis.get(rig.app.keys.webhook_recording_since)}, not 0)"
        )
    finally:
        rig.close()
