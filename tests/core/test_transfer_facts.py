"""``TransferFacts``: final transfers are read from the exchange once; what is not final is read again."""

from __future__ import annotations

import redis

from worker.store.keys import Keys
from worker.store.transfer_facts import TTL_S, TransferFact, TransferFacts


def test_facts_round_trip_expire_and_ignore_what_they_cannot_read(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    facts = TransferFacts(client, Keys(key_prefix))
    facts.put("o1", TransferFact(failed=False, from_uid="100", to_uid="200"))
    facts.put_many({"o2": TransferFact(failed=True)})
    client.set(f"{key_prefix}:order:o3", "garbage")
    got = facts.get_many(["o1", "o2", "o3", "o4", "o1"])
    assert got == {"o1": TransferFact(False, "100", "200"), "o2": TransferFact(True)}
    assert 0 < client.ttl(f"{key_prefix}:order:o1") <= TTL_S
    assert facts.get_many([]) == {}
