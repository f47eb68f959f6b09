"""The hand-off: an event message is recorded before it is enqueued, and stays recorded until a worker has stored
its event (the ingest script forgets it, atomically with the store) or dead-lettered it.

dramatiq on Redis can lose a message when Redis goes away at the wrong moment: a retry whose enqueue fails is
dropped (the original is acked anyway), delayed messages held in a consumer's memory are dropped when it
reconnects, and a fetch whose reply is lost leaves messages in the live worker's ack set until it restarts
(measured in the chaos run: an offboarding lost this way left money in a sub-account). Customers are not at
risk from that once their event is stored (the inbox and pending sweeps re-schedule them), but an event that was
never stored would be lost for good. So the sweep re-sends an event still unstored ``stale_ms`` after it was
last sent — only while the event queues and their delay queues are empty, because a message waiting in a
backlog is not lost, and at most once per ``stale_ms``. A re-sent duplicate is harmless: intake stores an
event id once. Every sender of event messages goes through ``send``: the publisher, dead-letter replays and
the sweep itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name

from worker.store.keys import Keys

__all__ = ["Handoff"]

_CLAIM_STALE = """
-- KEYS: handoff zset, handoff bodies, then the event queues (lists) that must be empty. ARGV: now, cutoff, limit
for i = 3, #KEYS do
  if redis.call('LLEN', KEYS[i]) > 0 then return {} end
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local bodies = {}
for _, id in ipairs(ids) do
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    redis.call('ZADD', KEYS[1], ARGV[1], id)
    table.insert(bodies, body)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return bodies
"""


class Handoff:
    """Sends event messages so that none is lost before its event is stored.

    ``queues``: the event queues (their delay queues are watched too). ``client`` is called for the Redis
    client, so that it can be created after a fork.
    """

    def __init__(
        self,
        broker: RedisBroker,
        client: Callable[[], redis.Redis],
        keys: Keys,
        queues: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._broker = broker
        self._client = client
        self._keys = keys
        self.queues = frozenset(queues)
        self._clock = clock
        self._claim: Any = None

    def send(self, message: dramatiq.Message[Any]) -> dramatiq.Message[Any]:
        """Record ``message`` (keyed by its message id, stable across retries), then enqueue it.

        Raises ``redis.RedisError`` if either fails; sending again is safe (the record is overwritten, and a
        duplicate message is a duplicate event, which intake takes once).
        """
        client = self._client()
        pipe = client.pipeline(transaction=True)
        pipe.zadd(self._keys.handoff, {message.message_id: self._now_ms()})
        pipe.hset(self._keys.handoff_bodies, message.message_id, message.encode())
        pipe.execute()
        return self._broker.enqueue(message)

    def resend_stale(self, stale_ms: int, *, limit: int = 500) -> int:
        """Re-send up to ``limit`` events unstored for ``stale_ms`` since last sent, if the event queues are
        empty. Returns how many were sent. Raises ``redis.RedisError`` when Redis fails (nothing is lost: a
        claimed entry not re-sent is claimed again after another ``stale_ms``)."""
        client = self._client()
        if self._claim is None:
            self._claim = client.register_script(_CLAIM_STALE)
        ns = self._broker.namespace
        queue_keys = [f"{ns}:{name}" for q in sorted(self.queues) for name in (q, dq_name(q))]
        now = self._now_ms()
        bodies = self._claim(
            keys=[self._keys.handoff, self._keys.handoff_bodies, *queue_keys],
            args=[now, now - stale_ms, limit],
            client=client,
        )
        for body in bodies:
            message = dramatiq.Message.decode(body if isinstance(body, bytes) else str(body).encode())
            self._broker.enqueue(message)
        return len(bodies)

    def waiting(self) -> int:
        """How many event messages have been sent and their event not yet stored (nor dead-lettered)."""
        return int(self._client().zcard(self._keys.handoff))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
