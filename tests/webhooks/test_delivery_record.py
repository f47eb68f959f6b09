"""When a key's ``api_key.issued`` reached the upstream, as the planner asks before revoking its predecessor: the
dispatcher's record, or, for a key issued before the dispatcher first ran (a release that recorded nothing,
webhooks switched on later), the moment recording began."""

from __future__ import annotations

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
