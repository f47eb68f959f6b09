"""What Get Transfer History said of transfers that are final, kept so no transfer is looked up twice.

Judging a lost transfer from a ledger that names only orderIds means looking up every transfer of the same amount
since the first send (``worker.provisioning.money_steps``). In a campaign that pays hundreds of customers the same
amount, that is hundreds of reads per judgement; a transient error anywhere used to throw them all away, and the
next run started again from the first (a livelock under faults). Facts of final transfers never change, so they
are kept here, shared by every worker and every judgement: a run that fails part-way leaves what it read.

Only final statuses are kept: ``SUCCESS`` (its source and destination uids) and ``FAILURE``. A ``PROCESSING``
transfer may still fail, and an orderId the exchange does not know may yet appear; both are read again.

Each fact is one string key, ``{p}:order:{orderId}``, expiring after ``TTL_S`` (longer than the longest ledger
window searched). Losing them (Redis lost its data) costs reads, never correctness: they are copies of the
exchange's records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from worker.store.keys import Keys

__all__ = ["TTL_S", "TransferFact", "TransferFacts"]

TTL_S = 40 * 86_400
"""How long a fact is kept: beyond the 31-day ledger window, after which no judgement reads it."""


@dataclass(frozen=True)
class TransferFact:
    """A final transfer: ``failed``, or ``SUCCESS`` from ``from_uid`` to ``to_uid``."""

    failed: bool
    from_uid: str = ""
    to_uid: str = ""

    def encode(self) -> str:
        return "F" if self.failed else f"S:{self.from_uid}:{self.to_uid}"

    @classmethod
    def decode(cls, text: str) -> TransferFact | None:
        """The fact ``text`` encodes; ``None`` for anything else (an unreadable entry is read from the exchange)."""
        if text == "F":
            return cls(failed=True)
        parts = text.split(":")
        if len(parts) == 3 and parts[0] == "S" and parts[1] and parts[2]:
            return cls(failed=False, from_uid=parts[1], to_uid=parts[2])
        return None


class TransferFacts:
    """Facts of final transfers by orderId, in Redis. Raises ``redis.RedisError`` from every method."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._prefix = f"{keys.prefix}:order:"

    def get_many(self, order_ids: Iterable[str]) -> dict[str, TransferFact]:
        """The facts known of ``order_ids`` (one round trip); the others are absent from the result."""
        ids = list(dict.fromkeys(order_ids))
        if not ids:
            return {}
        values = self._redis.mget([self._prefix + order_id for order_id in ids])
        found: dict[str, TransferFact] = {}
        for order_id, value in zip(ids, values, strict=True):
            if value is None:
                continue
            fact = TransferFact.decode(value.decode("ascii", "replace") if isinstance(value, bytes) else str(value))
            if fact is not None:
                found[order_id] = fact
        return found

    def put(self, order_id: str, fact: TransferFact) -> None:
        """Keep ``fact`` of a final transfer for ``TTL_S``."""
        self._redis.set(self._prefix + order_id, fact.encode(), ex=TTL_S)

    def put_many(self, facts: Mapping[str, TransferFact]) -> None:
        """Keep several facts in one round trip."""
        if not facts:
            return
        pipe = self._redis.pipeline(transaction=False)
        for order_id, fact in facts.items():
            pipe.set(self._prefix + order_id, fact.encode(), ex=TTL_S)
        pipe.execute()
