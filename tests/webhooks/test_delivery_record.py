"""When a key's ``api_key.issued`` reached the upstream, as the planner asks before revoking its predecessor: the
dispatcher's record, or, for a key issued before this release's dispatcher first ran (an older release recorded
nothing; webhooks switched on later), that moment — 0 after a loss."""

from __future__ import annotations

from handlers.delivery import DELIVERY_UNTRACKED
from tests.webhooks.conftest import Hooks
from worker.webhooks.store import DeliveryStore


def test_a_key_issued_before_recording_began_counts_as_delivered_then(hooks: Hooks) -> None:
    store = DeliveryStore(hooks.redis, hooks.keys)
    assert store.key_delivered_at("r1", "k-old", 1_000) is None, "nothing admitted yet: nothing is known"
    store.admit(5_000)
    store.admit(9_000)  # the first admission fixes the moment
    assert store.key_delivered_at("r1", "k-old", 1_000) == 5_000
    assert store.key_delivered_at("r1", "k-new", 5_000) is None, "issued since: only its own record counts"
    hooks.redis.hset(hooks.keys.keys_delivered("r1"), "k-new", 7_000)
    assert store.key_delivered_at("r1", "k-new", 5_000) == 7_000
    hooks.redis.hset(hooks.keys.keys_delivered("r1"), "k-old", 4_000)
    assert store.key_delivered_at("r1", "k-old", 1_000) == 4_000, "a record wins over the moment"


def test_after_a_loss_nothing_counts_as_delivered_unrecorded(hooks: Hooks) -> None:
    """``provisioner recover`` sets the moment to 0 (a dispatcher that ran on the emptied Redis first took it for
    a first deployment): a key issued before the dispatcher's next pass is waited for like any other (adv22: the
    replacement issued after the loss was taken for delivered and the upstream's only key revoked)."""
    store = DeliveryStore(hooks.redis, hooks.keys)
    store.admit(5_000)  # on the emptied Redis, before the recovery
    hooks.redis.set(hooks.keys.webhook_recording_since, "0")  # as ``recover`` does
    store.admit(9_000)
    assert store.key_delivered_at("r1", "k-early", 1_000) is None


def test_a_process_without_webhooks_waits_wherever_the_deployment_records_deliveries(hooks: Hooks) -> None:
    """Whether a rotation waits for delivery is the deployment's: a process without ``PROVISIONER_WEBHOOK_URL``
    (an operator's shell running ``customer retry``) waits like the workers wherever deliveries are recorded —
    however long the dispatchers have been down (adv37, adv41: it revoked the upstream's only key). Where none
    is (no dispatcher ever ran, or ``webhooks disable``), delivery is not tracked: rotations go on as without
    webhooks; a process with webhooks still waits for the first pass."""
    store = DeliveryStore(hooks.redis, hooks.keys)
    assert store.key_delivered_at("r1", "k-1", 1_000, webhooks_here=False) == DELIVERY_UNTRACKED, "none ever ran"
    assert store.key_delivered_at("r1", "k-1", 1_000) is None, "with webhooks: wait for the dispatcher"
    store.admit(5_000)
    assert store.key_delivered_at("r1", "k-2", 6_000, webhooks_here=False) is None, "deliveries recorded: wait"
    hooks.redis.hset(hooks.keys.keys_delivered("r1"), "k-2", 7_000)
    assert store.key_delivered_at("r1", "k-2", 6_000, webhooks_here=False) == 7_000
    assert store.disable() == 0
    assert store.key_delivered_at("r1", "k-3", 8_000, webhooks_here=False) == DELIVERY_UNTRACKED, "disabled"
