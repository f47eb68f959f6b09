"""The delivery store: which outbound events are still to be delivered, to whom next, and the dead letters.

Design: our own cursor over the ``{prefix}:outbound`` stream plus one FIFO *lane* per customer, not a consumer
group. A consumer group hands entries out in stream order whoever they are about, has no notion of "not before
this time" for a three-day backoff, and keeps one pending list for all; we need per-customer order (an event waits
until the one before it is delivered or given up) and a due time per customer. So:

- ``admit`` copies the stream ids after the cursor into their customer's lane and advances the cursor, in one
  script: an entry is admitted exactly once, and the stream is never consumed or trimmed (other readers keep it).
- ``claim`` takes lanes whose head is due, leases each (its due time becomes the lease's end, a token marks the
  attempt) and returns the head's body, in one script. Only the lane's head is ever in flight: one customer's
  events are never delivered out of order.
- ``report`` applies an attempt's decision (delivered, retry at, dead) only if the lease still holds, in one
  script; delivered or dead pops the head and makes the next one due at once.

A dispatcher that dies at any line leaves either the state before a script or after it; an attempt in flight is
redone once its lease ends (the receiver drops the copy by ``webhook-id``). With Redis' AOF (``appendfsync
always``) a Redis restart keeps all of it. Lanes are named by our customer ref, or ``~<event id>`` for an event
about no customer. Times are the dispatcher's clock (injectable), except stream ids, which are Redis' clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import redis

from handlers.delivery import DELIVERY_UNTRACKED, Tries
from worker.store.keys import Keys

__all__ = ["Claim", "DeadLetter", "DeliveryStatus", "DeliveryStore"]

_MS_OF = """
local function ms_of(id) return tonumber(string.match(id, '^(%d+)')) end
"""

_ADMIT = (
    _MS_OF
    + """
-- KEYS: stream, cursor, due, heads, stats, recording since, seen, disabled. ARGV: now, limit, lane key prefix
if redis.call('EXISTS', KEYS[8]) == 0 then  -- not after ``webhooks disable`` (a pod of the old rollout)
  redis.call('SET', KEYS[6], ARGV[1], 'NX')  -- the first pass (after a loss ``recover`` has set it to 0)
  redis.call('SET', KEYS[7], '1')
end
local cursor = redis.call('GET', KEYS[2]) or '0-0'
local rows = redis.call('XRANGE', KEYS[1], '(' .. cursor, '+', 'COUNT', ARGV[2])
for _, row in ipairs(rows) do
  local id, f = row[1], row[2]
  local fields = {}
  for i = 1, #f, 2 do fields[f[i]] = f[i + 1] end
  local lane = fields['ref']
  if lane == nil then  -- appended before entries named their customer: read it from the event
    local ok, event = pcall(cjson.decode, fields['event'] or '')
    if ok and type(event) == 'table' and type(event['customer_ref']) == 'string' then lane = event['customer_ref'] end
  end
  if lane == nil or lane == '' then lane = '~' .. (fields['id'] or id) end
  if redis.call('RPUSH', ARGV[3] .. lane, id) == 1 then
    redis.call('ZADD', KEYS[3], ARGV[1], lane)
    redis.call('ZADD', KEYS[4], ms_of(id), lane)
  end
  cursor = id
end
if #rows > 0 then
  redis.call('SET', KEYS[2], cursor)
  redis.call('HINCRBY', KEYS[5], 'undelivered', #rows)
end
return #rows
"""
)

_CLAIM = (
    _MS_OF
    + """
-- KEYS: due, leases, stream, tries, heads, stats. ARGV: now, limit, lease end, token prefix, lane key prefix
local lanes = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for i, lane in ipairs(lanes) do
  local key = ARGV[5] .. lane
  local head, rows = redis.call('LINDEX', key, 0), {}
  while head do
    rows = redis.call('XRANGE', KEYS[3], head, head)
    if #rows > 0 then break end
    -- trimmed from the stream before it was delivered: there is nothing left to send
    redis.call('LPOP', key)
    redis.call('HDEL', KEYS[4], head)
    redis.call('HINCRBY', KEYS[6], 'undelivered', -1)
    redis.call('HINCRBY', KEYS[6], 'gone', 1)
    head = redis.call('LINDEX', key, 0)
  end
  if not head then
    redis.call('ZREM', KEYS[1], lane)
    redis.call('ZREM', KEYS[5], lane)
    redis.call('HDEL', KEYS[2], lane)
  else
    local token = ARGV[4] .. ':' .. i
    redis.call('ZADD', KEYS[1], ARGV[3], lane)
    redis.call('HSET', KEYS[2], lane, token)
    redis.call('ZADD', KEYS[5], ms_of(head), lane)
    local fields, body, event_id = rows[1][2], '', ''
    for j = 1, #fields, 2 do
      if fields[j] == 'event' then body = fields[j + 1] elseif fields[j] == 'id' then event_id = fields[j + 1] end
    end
    table.insert(out, {lane, head, token, event_id, body, redis.call('HGET', KEYS[4], head) or ''})
  end
end
return out
"""
)

_REPORT = (
    _MS_OF
    + """
-- KEYS: due, leases, tries, heads, stats, dead, dead info, the lane's delivered keys.
-- ARGV: lane, stream id, token, outcome (delivered|retry|dead), retry at, tries, now, lane key prefix, dead letter,
--       the api key an api_key.issued event delivers ('' for any other event)
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local key = ARGV[8] .. ARGV[1]
if redis.call('LINDEX', key, 0) ~= ARGV[2] then return 0 end
if ARGV[4] == 'retry' then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[6])
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
  return 1
end
redis.call('LPOP', key)
if ARGV[4] == 'delivered' and ARGV[10] ~= '' then redis.call('HSET', KEYS[8], ARGV[10], ARGV[7]) end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HINCRBY', KEYS[5], 'undelivered', -1)
if ARGV[4] == 'dead' then
  redis.call('ZADD', KEYS[6], ARGV[7], ARGV[2])
  redis.call('HSET', KEYS[7], ARGV[2], ARGV[9])
end
local next_head = redis.call('LINDEX', key, 0)
if next_head then
  redis.call('ZADD', KEYS[1], ARGV[7], ARGV[1])
  redis.call('ZADD', KEYS[4], ms_of(next_head), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return 1
"""
)

_RETRY_DEAD = (
    _MS_OF
    + """
-- KEYS: dead, dead info, due, heads, stats. ARGV: stream id, now, lane key prefix
local info = redis.call('HGET', KEYS[2], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 or not info then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local lane = cjson.decode(info)['lane']
if redis.call('RPUSH', ARGV[3] .. lane, ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[3], ARGV[2], lane)
  redis.call('ZADD', KEYS[4], ms_of(ARGV[1]), lane)
end
redis.call('HINCRBY', KEYS[5], 'undelivered', 1)
return 1
"""
)


@dataclass(frozen=True)
class Claim:
    """The head of one lane, leased for one attempt."""

    lane: str
    entry_id: str
    """Its stream id."""
    token: str
    event_id: str
    body: str
    """The event JSON, exactly as on the stream (what is signed and sent)."""
    tries: Tries

    def __repr__(self) -> str:  # never the body: it may carry encrypted credentials
        return f"Claim(lane={self.lane!r}, entry_id={self.entry_id!r}, event_id={self.event_id!r})"


@dataclass(frozen=True)
class DeadLetter:
    """A delivery given up after the retry horizon; ``provisioner webhooks retry`` sends it again."""

    entry_id: str
    lane: str
    event_id: str
    event_type: str
    dead_ms: int
    reason: str
    attempts: int
    first_ms: int | None
    last_ms: int | None
    last_status: int | None
    last_error: str

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DeliveryStatus:
    undelivered: int
    """Admitted and neither delivered nor given up."""
    not_admitted: int | None
    """On the stream after the cursor (no dispatcher has looked at them yet), counted up to 10 000 when asked."""
    oldest_ms: int | None
    """Stream time of the oldest event not yet delivered (admitted or not); ``None`` when there is none."""
    dead_letters: int
    gone: int
    """Admitted, then trimmed from the stream before they could be delivered."""
    cursor: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _issued_key(event_id: str) -> str:
    """The api key an ``api_key.issued`` event (id ``api_key.issued:<ref>:<api key>``) delivers, else ``''``."""
    kind, _, rest = event_id.partition(":")
    return rest.rpartition(":")[2] if kind == "api_key.issued" and ":" in rest else ""


def _ms_of(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


class DeliveryStore:
    """Every read and write of the webhook delivery state (see the module docstring). Raises ``redis.RedisError``
    when Redis fails; every write is one script, so a failed call changed nothing or everything."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._admit = client.register_script(_ADMIT)
        self._claim = client.register_script(_CLAIM)
        self._report = client.register_script(_REPORT)
        self._retry_dead = client.register_script(_RETRY_DEAD)

    def key_delivered_at(self, ref: str, api_key: str, issued_at_ms: int, *, webhooks_here: bool = True) -> int | None:
        """When the ``api_key.issued`` of ``api_key`` (customer ``ref``, issued at ``issued_at_ms``) was delivered
        to the upstream (ms, recorded with its delivery, in the same script), or ``None``: not yet (a dead letter
        is not delivered until it is sent again).

        A key issued before this release's dispatcher first ran (an upgrade from a release that recorded no
        delivery; webhooks switched on after a stream consumer took the event) may have been delivered
        unrecorded: it counts as delivered then, never later (else its predecessor would stay live until the next
        rotation); one in flight at that moment is not waited for, as before deliveries were recorded. After a
        loss of our state ``provisioner recover`` sets that moment to 0: nothing counts as delivered unrecorded.

        Whether to wait is the deployment's, not the asking process's. Where deliveries are recorded (a
        dispatcher has passed since the last loss: ``{p}:wh:seen``), a process without webhooks of its own
        (``webhooks_here`` False: an operator's shell running ``customer retry``, a host missing the URL) waits
        like the others, however long the workers have been down. Where none has, or after ``provisioner
        webhooks disable`` (its tombstone outlives a dispatcher of the old rollout), delivery is not tracked:
        ``DELIVERY_UNTRACKED``."""
        k = self.keys
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(k.keys_delivered(ref), api_key)
            pipe.get(k.webhook_recording_since)
            pipe.exists(k.webhook_seen)
            pipe.exists(k.webhook_disabled)
            delivered, since, seen, disabled = pipe.execute()
        if delivered is not None:
            return int(delivered)
        if disabled or (not webhooks_here and not seen):
            return DELIVERY_UNTRACKED
        if since is not None and issued_at_ms < int(since):
            return int(since)
        return None

    def disable(self) -> int:
        """Stop tracking deliveries (webhooks switched off for good): rotations no longer wait for an
        ``api_key.issued`` to reach the upstream, in any process; a dispatcher still running records nothing
        more (the tombstone), until ``enable``. Returns how many admitted events were still undelivered."""
        k = self.keys
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(k.webhook_stats, "undelivered")
            pipe.set(k.webhook_disabled, "1")
            pipe.delete(k.webhook_recording_since, k.webhook_seen)
            undelivered, *_ = pipe.execute()
        return int(undelivered or 0)

    def enable(self) -> bool:
        """Undo ``disable`` (webhooks switched on again): the next dispatcher pass records deliveries from then
        on. Returns whether tracking was disabled."""
        return bool(self.redis.delete(self.keys.webhook_disabled))

    def undelivered(self) -> int:
        """How many admitted events are neither delivered nor given up."""
        return int(self.redis.hget(self.keys.webhook_stats, "undelivered") or 0)

    def admit(self, now_ms: int, *, limit: int = 1000) -> int:
        """Put up to ``limit`` stream entries after the cursor into their lanes (a lane that was empty is due at
        ``now_ms``). Returns how many were admitted."""
        k = self.keys
        return int(
            self._admit(
                keys=[
                    k.outbound,
                    k.webhook_cursor,
                    k.webhook_due,
                    k.webhook_heads,
                    k.webhook_stats,
                    k.webhook_recording_since,
                    k.webhook_seen,
                    k.webhook_disabled,
                ],
                args=[now_ms, limit, k.webhook_lane_prefix],
            )
        )

    def claim(self, now_ms: int, *, limit: int, lease_ms: int, token: str) -> list[Claim]:
        """Lease up to ``limit`` lanes whose head is due at ``now_ms`` until ``now_ms + lease_ms``; ``token`` (unique
        per call) marks the attempts. Heads trimmed from the stream are skipped (counted ``gone``)."""
        k = self.keys
        rows = self._claim(
            keys=[k.webhook_due, k.webhook_leases, k.outbound, k.webhook_tries, k.webhook_heads, k.webhook_stats],
            args=[now_ms, limit, now_ms + lease_ms, token, k.webhook_lane_prefix],
        )
        claims = []
        for lane, entry_id, lease, event_id, body, tries in rows:
            claims.append(
                Claim(
                    lane=_text(lane),
                    entry_id=_text(entry_id),
                    token=_text(lease),
                    event_id=_text(event_id),
                    body=_text(body),
                    tries=_tries(_text(tries)),
                )
            )
        return claims

    def delivered(self, claim: Claim, now_ms: int) -> bool:
        """The head was delivered: pop it; the next one is due at once. False if the lease was lost (another
        attempt took over, which will deliver it again)."""
        return self._apply(claim, "delivered", now_ms=now_ms)

    def retry(self, claim: Claim, tries: Tries, at_ms: int, now_ms: int) -> bool:
        """The attempt failed: keep ``tries`` and make the head due at ``at_ms``. False if the lease was lost."""
        return self._apply(claim, "retry", now_ms=now_ms, at_ms=at_ms, tries=tries)

    def dead(self, claim: Claim, tries: Tries, reason: str, event_type: str, now_ms: int) -> bool:
        """Give the head up (a dead letter) and move on to the next. False if the lease was lost."""
        letter = DeadLetter(
            entry_id=claim.entry_id,
            lane=claim.lane,
            event_id=claim.event_id,
            event_type=event_type,
            dead_ms=now_ms,
            reason=reason,
            attempts=tries.attempts,
            first_ms=tries.first_ms,
            last_ms=tries.last_ms,
            last_status=tries.last_status,
            last_error=tries.last_error,
        )
        return self._apply(claim, "dead", now_ms=now_ms, tries=tries, letter=json.dumps(letter.summary()))

    def _apply(
        self, claim: Claim, outcome: str, *, now_ms: int, at_ms: int = 0, tries: Tries | None = None, letter: str = ""
    ) -> bool:
        k = self.keys
        applied = self._report(
            keys=[
                k.webhook_due,
                k.webhook_leases,
                k.webhook_tries,
                k.webhook_heads,
                k.webhook_stats,
                k.webhook_dead,
                k.webhook_dead_info,
                k.keys_delivered(claim.lane),
            ],
            args=[
                claim.lane,
                claim.entry_id,
                claim.token,
                outcome,
                at_ms,
                json.dumps(asdict(tries)) if tries is not None else "",
                now_ms,
                k.webhook_lane_prefix,
                letter,
                _issued_key(claim.event_id),
            ],
        )
        return bool(applied)

    def next_due_ms(self) -> int | None:
        """When the earliest lane is due (or its lease ends)."""
        first = self.redis.zrange(self.keys.webhook_due, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    # --- dead letters ----------------------------------------------------------------------------------------
    def dead_letters(self, *, since_ms: int | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first (optionally only those given up since ``since_ms``)."""
        ids = self.redis.zrangebyscore(self.keys.webhook_dead, since_ms if since_ms is not None else "-inf", "+inf")
        return [letter for letter in self._letters([_text(i) for i in ids]) if letter is not None]

    def dead_letter(self, entry_id: str) -> DeadLetter | None:
        return next(iter(self._letters([entry_id])), None)

    def _letters(self, ids: list[str]) -> Iterator[DeadLetter | None]:
        if not ids:
            return
        for raw in self.redis.hmget(self.keys.webhook_dead_info, ids):
            yield DeadLetter(**json.loads(_text(raw))) if raw else None

    def retry_dead(self, entry_id: str, now_ms: int) -> bool:
        """Send a dead letter again: back at the end of its lane with a fresh retry horizon. False if there is no
        such dead letter (already retried: running it twice is safe)."""
        k = self.keys
        return bool(
            self._retry_dead(
                keys=[k.webhook_dead, k.webhook_dead_info, k.webhook_due, k.webhook_heads, k.webhook_stats],
                args=[entry_id, now_ms, k.webhook_lane_prefix],
            )
        )

    def body(self, entry_id: str) -> str | None:
        """The event JSON of a stream entry (``None`` once trimmed)."""
        rows = self.redis.xrange(self.keys.outbound, entry_id, entry_id)
        if not rows:
            return None
        fields = rows[0][1]
        value = fields.get("event") if isinstance(fields, dict) else None
        return _text(value) if value is not None else None

    # --- status --------------------------------------------------------------------------------------------
    def status(self, *, count_new: bool = False) -> DeliveryStatus:
        """What waits: counts, and the stream time of the oldest event not yet delivered (for the age gauge).
        ``count_new`` also counts the entries not admitted yet (up to 10 000; a scrape does not)."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(k.webhook_cursor)
        pipe.hgetall(k.webhook_stats)
        pipe.zrange(k.webhook_heads, 0, 0, withscores=True)
        pipe.zcard(k.webhook_dead)
        cursor_raw, stats, oldest_head, dead = pipe.execute()
        cursor = _text(cursor_raw) if cursor_raw else "0-0"
        first_new = self.redis.xrange(k.outbound, f"({cursor}", "+", count=1)
        not_admitted = None
        if count_new:
            new: Any = self.redis.xrange(k.outbound, f"({cursor}", "+", count=10_000) if first_new else []
            not_admitted = len(new)
        candidates = [int(oldest_head[0][1])] if oldest_head else []
        if first_new:
            candidates.append(_ms_of(_text(first_new[0][0])))
        return DeliveryStatus(
            undelivered=int(stats.get("undelivered", 0)),
            not_admitted=not_admitted,
            oldest_ms=min(candidates) if candidates else None,
            dead_letters=int(dead),
            gone=int(stats.get("gone", 0)),
            cursor=cursor,
        )


def _tries(raw: str) -> Tries:
    return Tries(**json.loads(raw)) if raw else Tries()
