"""The hand-off: an event message is recorded before it is enqueued, and stays recorded until a worker has stored
its event (the ingest script forgets it, atomically with the store) or dead-lettered it.

dramatiq on Redis can lose a message when Redis goes away at the wrong moment: a retry whose enqueue fails is
dropped (the original is acked anyway), delayed messages held in a consumer's memory are dropped when it
reconnects, and a fetch whose reply is lost leaves messages in the live worker's ack set until it restarts
(measured in the chaos run: an offboarding lost this way left money in a sub-account). Customers are not at
risk from that once their event is stored (the stale scan re-schedules them from the inbox and the pending set),
but an event that was never stored would be lost for good.

So the stale scan re-sends an event still unstored ``stale_ms`` after it was last sent, at most once per ``stale_ms``
and only while *its own* queue and that queue's delay queue are empty: a message waiting in a backlog is not
lost, and a lost offboarding (queue ``urgent``) does not wait for a sign-up backlog in ``events`` to drain.
Times are Redis' clock, so hosts' clocks cannot make a message look stale. After ``max_resends`` re-sends an
event is no longer sent (a message that kills its worker must not multiply); it stays counted by
``provisioner_events_unstored``, which the ``EventsNotStored`` alert watches. A re-sent duplicate is
harmless: intake stores an event id once. Every sender of event messages goes through ``send``: the
publisher, dead-letter replays and the stale scan itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import dramatiq
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name, q_name

from worker.store.keys import Keys

__all__ = ["MAX_RESENDS", "Handoff", "Unstored"]

MAX_RESENDS = 5

_log = structlog.get_logger(__name__)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
_RECORD = (
    _NOW
    + """
-- KEYS: the queue's hand-off set, bodies. ARGV: message id, body
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
"""
)
_CLAIM_STALE = (
    _NOW
    + """
-- KEYS: the queue's hand-off set, bodies, re-send counts, the queue, its delay queue.
-- ARGV: stale ms, limit, max re-sends. Returns {bodies to send, how many were given up now}.
if redis.call('LLEN', KEYS[4]) > 0 or redis.call('LLEN', KEYS[5]) > 0 then return {{}, 0} end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, ARGV[2])
local bodies, given_up = {}, 0
for _, id in ipairs(ids) do
  local body = redis.call('HGET', KEYS[2], id)
  if not body then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[3], id)
  elseif tonumber(redis.call('HGET', KEYS[3], id) or '0') >= tonumber(ARGV[3]) then
    redis.call('ZADD', KEYS[1], '+inf', id)  -- still counted as unstored, never sent again
    given_up = given_up + 1
  else
    redis.call('ZADD', KEYS[1], now, id)
    table.insert(bodies, body)
  end
end
return {bodies, given_up}
"""
)


@dataclass(frozen=True)
class Unstored:
    """An event message sent and not yet stored by a worker."""

    message_id: str
    queue: str
    event_id: str
    event_type: str
    last_sent_ms: int | None
    """``None`` once the stale scan gave up re-sending it."""
    resends: int

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "queue": self.queue,
            "event_id": self.event_id,
            "type": self.event_type,
            "last_sent_ms": self.last_sent_ms,
            "resends": self.resends,
        }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class Handoff:
    """Sends event messages so that none is lost before its event is stored.

    ``queues``: the event queues. ``client`` is called for the Redis client, so that it can be created after a
    fork.
    """

    def __init__(
        self,
        broker: RedisBroker,
        client: Callable[[], redis.Redis],
        keys: Keys,
        queues: Iterable[str],
        *,
        max_resends: int = MAX_RESENDS,
    ) -> None:
        self._broker = broker
        self._client = client
        self._keys = keys
        self.queues = tuple(queues)
        self._max_resends = max_resends
        self._scripts: dict[str, Any] = {}

    def send(self, message: dramatiq.Message[Any]) -> dramatiq.Message[Any]:
        """Record ``message`` (keyed by its message id, stable across retries), then enqueue it.

        Raises ``redis.RedisError`` if either fails; sending again is safe (the record is overwritten, and a
        duplicate message is a duplicate event, which intake takes once).
        """
        queue = q_name(message.queue_name)
        self._script("record", _RECORD)(
            keys=[self._keys.handoff(queue), self._keys.handoff_bodies],
            args=[message.message_id, message.encode()],
            client=self._client(),
        )
        return self._broker.enqueue(message)

    def resend_stale(self, stale_ms: int, *, limit: int = 500) -> int:
        """Re-send up to ``limit`` events per queue unstored for ``stale_ms`` since last sent, for each queue
        that is empty. Returns how many were sent. Raises ``redis.RedisError`` when Redis fails (nothing is lost:
        a claimed entry not re-sent is claimed again after another ``stale_ms``)."""
        claim, client = self._script("claim", _CLAIM_STALE), self._client()
        ns, sent = self._broker.namespace, 0
        for queue in self.queues:
            bodies, given_up = claim(
                keys=[
                    self._keys.handoff(queue),
                    self._keys.handoff_bodies,
                    self._keys.handoff_resends,
                    f"{ns}:{queue}",
                    f"{ns}:{dq_name(queue)}",
                ],
                args=[stale_ms, limit, self._max_resends],
                client=client,
            )
            if given_up:
                _log.error("events no longer re-sent: still unstored after every re-send", queue=queue, events=given_up)
            for body in bodies:
                message = dramatiq.Message.decode(_bytes(body))
                self._broker.enqueue(message)
                client.hincrby(self._keys.handoff_resends, message.message_id, 1)  # counted once really sent
            sent += len(bodies)
        return sent

    def list(self) -> list[Unstored]:
        """Every event message sent and not yet stored, oldest first (given-up ones last)."""
        client = self._client()
        rows: list[Unstored] = []
        for queue in self.queues:
            entries = cast(list[tuple[Any, float]], client.zrange(self._keys.handoff(queue), 0, -1, withscores=True))
            for raw_id, score in entries:
                message_id = _text(raw_id)
                body = client.hget(self._keys.handoff_bodies, message_id)
                resends = client.hget(self._keys.handoff_resends, message_id)
                args = dramatiq.Message.decode(_bytes(body)).args if body is not None else ()
                event = args[0] if args and isinstance(args[0], dict) else {}
                rows.append(
                    Unstored(
                        message_id=message_id,
                        queue=queue,
                        event_id=str(event.get("id", "?")),
                        event_type=str(event.get("type", "?")),
                        last_sent_ms=None if score == float("inf") else int(score),
                        resends=int(resends or 0),
                    )
                )
        return sorted(rows, key=lambda u: (u.last_sent_ms is None, u.last_sent_ms or 0))

    def resend(self, message_id: str) -> bool:
        """Send ``message_id`` again now, whatever its queue holds and however often it was re-sent (an
        operator's decision), with a fresh re-send budget. False if it is not waiting (already stored)."""
        client = self._client()
        body = client.hget(self._keys.handoff_bodies, message_id)
        if body is None:
            return False
        client.hdel(self._keys.handoff_resends, message_id)
        self.send(dramatiq.Message.decode(_bytes(body)))
        return True

    def waiting(self) -> int:
        """How many event messages have been sent and their event not yet stored (nor dead-lettered)."""
        client = self._client()
        return sum(int(client.zcard(self._keys.handoff(queue))) for queue in self.queues)

    def _script(self, name: str, source: str) -> Any:
        """The script object (called with the current client each time: the first call may precede a fork)."""
        if name not in self._scripts:
            self._scripts[name] = self._client().register_script(source)
        return self._scripts[name]
