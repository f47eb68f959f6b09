"""When a key's ``api_key.issued`` reached the upstream, as the planner asks before revoking its predecessor: the
dispatcher's record, or, for a key issued before this release's dispatcher first ran after an older one (which
recorded nothing), that moment."""

from __future__ import annotations

from tests.webhooks.conftest import Hooks
from worker.webhooks.store import DeliveryStore


def test_a_key_issued_before_recording_began_counts_as_delivered_then(hooks: Hooks) -> None:
    store = DeliveryStore(hooks.redis, hooks.keys)
    hooks.redis.set(hooks.keys.webhook_cursor, "0-0")  # an older release's dispatcher ran
    assert store.key_delivered_at("r1", "k-old", 1_000) is None, "nothing admitted yet: nothing is known"
    store.admit(5_000)
    store.admit(9_000)  # the first admission fixes the moment
    assert store.key_delivered_at("r1", "k-old", 1_000) == 5_000
    assert store.key_delivered_at("r1", "k-new", 5_000) is None, "issued since: only its own record counts"
    hooks.redis.hset(hooks.keys.keys_delivered("r1"), "k-new", 7_000)
    assert store.key_delivered_at("r1", "k-new", 5_000) == 7_000
    hooks.redis.hset(hooks.keys.keys_delivered("r1"), "k-old", 4_000)
    assert store.key_delivered_at("r1", "k-old", 1_000) == 4_000, "a record wins over the moment"


def test_without_an_older_dispatcher_nothing_counts_as_delivered_unrecorded(hooks: Hooks) -> None:
    """A first deployment, or a Redis that lost everything (the cursor with it): a key issued before the
    dispatcher's first pass is waited for like any other (adv22: after a loss, the replacement issued before the
    dispatcher ran was taken for delivered and the upstream's only key revoked)."""
    store = DeliveryStore(hooks.redis, hooks.keys)
    store.admit(5_000)
    assert store.key_delivered_at("r1", "k-early", 1_000) is None
