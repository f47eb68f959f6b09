"""When each customer must be reconciled next: a sorted set of ref → time (ms), safe under crashes and races.

- ``schedule(ref, at)`` asks for a reconcile at ``at`` at the latest (an earlier wake-up already asked for wins).
- ``finish_and_release(lock, wake, seen_seq)`` is called by a reconcile that went idle having seen the
  customer's first ``seen_seq`` events (intake counts them). If no event arrived since and no run found the
  customer busy (its dirty flag), its wake-up replaces the customer's, the customer leaves the inbox and the lock
  is released, in one script; otherwise the run keeps the lock and looks again. Only this customer's own runs
  (one at a time, under its lock) schedule its later wake-ups, so nothing else can be lost by the replacement.
  No clock is compared, so hosts' clock skew cannot lose a wake-up.
- ``sweep`` is the stale scan (docs/glossary.md; not the offboarding sweep): it re-schedules customers whose
  events or intents have waited too long, so convergence does not depend on a dramatiq message surviving
  (dramatiq loses a retry whose enqueue fails while Redis is down).
- ``claim_due`` moves due entries into an in-flight set (leased), atomically, so concurrent schedulers never
  claim an entry twice; ``done`` drops the in-flight entry once its reconcile message is enqueued;
  ``recover_expired`` puts back entries whose scheduler died between claim and enqueue.
"""

from __future__ import annotations

import redis

from worker.store.keys import Keys
from worker.store.lock import CustomerLock, LockLost

__all__ = ["SWEEP_COVER_MS", "DueSchedule"]

SWEEP_COVER_MS = 3_600_000
"""A wake-up due within this long counts as looking after a customer the stale scan would otherwise re-schedule."""

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, ref in ipairs(due) do
  redis.call('ZREM', KEYS[1], ref)
  redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[3]), ref)
end
return due
"""
_RECOVER = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, ref in ipairs(expired) do
  redis.call('ZADD', KEYS[1], 'LT', ARGV[1], ref)
  redis.call('ZREM', KEYS[2], ref)
end
return #expired
"""
_SWEEP = """
local count = 0
for _, source in ipairs({{KEYS[2], ARGV[2]}, {KEYS[3], ARGV[3]}}) do
  local stale = redis.call('ZRANGEBYSCORE', source[1], '-inf', source[2], 'LIMIT', 0, 1000)
  for _, ref in ipairs(stale) do
    -- a customer with a wake-up due soon (a rate-limit slot, a settle wait) is not orphaned; a far one (a key's
    -- age) does not cover an event nobody has seen
    local due = redis.call('ZSCORE', KEYS[1], ref)
    if (not due or tonumber(due) > tonumber(ARGV[4])) and not redis.call('ZSCORE', KEYS[4], ref) then
      redis.call('ZADD', KEYS[1], ARGV[1], ref)
      count = count + 1
    end
  end
end
return count
"""
_BACKSTOP = """
-- KEYS: due, backstops. ARGV: ref, at. A real wake-up that comes first wins; our own earlier backstop moves.
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
local mine = redis.call('HGET', KEYS[2], ARGV[1])
if current and not (mine and tonumber(current) == tonumber(mine)) and tonumber(current) <= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""
_FINISH_AND_RELEASE = """
-- KEYS: due, inbox, the customer's event sequence, lock, dirty, backstops.
-- ARGV: ref, wake ('' for none), seq seen, token, ttl
if redis.call('GET', KEYS[4]) ~= ARGV[4] then return -1 end
local dirty = redis.call('DEL', KEYS[5])
if dirty == 1 or tonumber(redis.call('GET', KEYS[3]) or '0') ~= tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[4], ARGV[5])  -- events came (or a run found us busy) after we looked: look again
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] == '' then redis.call('ZREM', KEYS[1], ARGV[1]) else redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
redis.call('HDEL', KEYS[6], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
"""


class DueSchedule:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._key = keys.due
        self._inflight = keys.due + ":inflight"
        self._workers = keys.workers
        self._inbox = keys.inbox
        self._pending = keys.pending
        self._sweep = client.register_script(_SWEEP)
        self._seq_key = keys.seq
        self._claim = client.register_script(_CLAIM)
        self._recover = client.register_script(_RECOVER)
        self._finish_and_release = client.register_script(_FINISH_AND_RELEASE)
        self._backstop = client.register_script(_BACKSTOP)
        self._keys = keys

    def schedule(self, ref: str, at_ms: int) -> None:
        """Reconcile ``ref`` at ``at_ms`` at the latest (an earlier wake-up already scheduled wins)."""
        self._redis.zadd(self._key, {ref: at_ms}, lt=True)

    def schedule_many(self, refs: list[str], at_ms: int, *, chunk: int = 1000, mark_busy_ms: int | None = None) -> None:
        """``schedule`` for many customers, ``chunk`` per round trip. ``mark_busy_ms``: also raise each one's dirty
        flag for that long, as a run that found it busy does — for a schedule made from outside the customers'
        locks on news their runs must see (an operator's declaration): a run that planned before the news and
        finishes after it would otherwise replace this wake-up with its own (``finish_and_release``); with the
        flag it looks again instead."""
        for start in range(0, len(refs), chunk):
            part = refs[start : start + chunk]
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(self._key, dict.fromkeys(part, at_ms), lt=True)
                if mark_busy_ms is not None:
                    for ref in part:
                        pipe.set(self._keys.dirty(ref), "1", px=mark_busy_ms)
                pipe.execute()

    def backstop(self, ref: str, at_ms: int) -> bool:
        """A dead-man's switch for a customer whose run failed: be due at ``at_ms`` unless a real wake-up comes
        first. Unlike ``schedule`` it moves *later* when it is our own previous backstop, so each failure of a
        retry chain that is still alive pushes it on, and it fires only once the chain has stopped (dropped by
        dramatiq in a Redis outage, or dead-lettered). A finished run's wake-up replaces it. Returns whether
        it was set."""
        return bool(self._backstop(keys=[self._key, self._keys.backstops], args=[ref, at_ms]))

    def finish_and_release(self, lock: CustomerLock, wake_at_ms: int | None, *, seen_seq: int) -> bool:
        """``finish`` and release ``lock`` in one script, if the run saw everything: no event arrived since it
        looked (``seen_seq``) and no run found the customer busy meanwhile (the dirty flag). Returns True when
        finished and released; False when the run must look again (the lock is renewed and still ours).
        Raises ``LockLost`` if the lock is no longer ours."""
        if lock.token is None:
            raise LockLost(lock.ref)
        ref = lock.ref
        result = int(
            self._finish_and_release(
                keys=[
                    self._key,
                    self._inbox,
                    self._seq_key(ref),
                    self._keys.lock(ref),
                    self._keys.dirty(ref),
                    self._keys.backstops,
                ],
                args=[ref, "" if wake_at_ms is None else wake_at_ms, seen_seq, lock.token, lock.ttl_ms],
            )
        )
        if result < 0:
            lock.released()
            raise LockLost(lock.ref)
        if result == 1:
            lock.released()
        return result == 1

    def sweep(self, now_ms: int, *, stale_ms: int) -> int:
        """The safety net under message delivery: re-schedule every customer with an event no finished reconcile
        has seen, or an unsettled intent, for longer than ``stale_ms`` and nothing scheduled (a message lost while
        Redis was down, a worker that died without redelivery). Returns how many were scheduled."""
        return int(
            self._sweep(
                keys=[self._key, self._inbox, self._pending, self._inflight],
                args=[now_ms, now_ms - stale_ms, now_ms - stale_ms, now_ms + SWEEP_COVER_MS],
            )
        )

    def cancel(self, ref: str) -> None:
        self._redis.zrem(self._key, ref)

    def claim_due(self, now_ms: int, *, limit: int = 500, lease_ms: int = 30_000) -> list[str]:
        """Take up to ``limit`` refs due by ``now_ms``, leased for ``lease_ms`` until ``done``."""
        return [str(r) for r in self._claim(keys=[self._key, self._inflight], args=[now_ms, limit, lease_ms])]

    def done(self, ref: str) -> None:
        """The reconcile message for a claimed ref is enqueued: drop its lease."""
        self._redis.zrem(self._inflight, ref)

    def recover_expired(self, now_ms: int) -> int:
        """Put back refs whose lease ran out (their scheduler died before enqueueing). Returns how many."""
        return int(self._recover(keys=[self._key, self._inflight], args=[now_ms]))

    def earliest_ms(self) -> int | None:
        """When the next customer is due, if any is scheduled."""
        head = self._redis.zrange(self._key, 0, 0, withscores=True)
        return int(head[0][1]) if head else None

    def next_due_ms(self, ref: str) -> int | None:
        score = self._redis.zscore(self._key, ref)
        return int(score) if score is not None else None

    def heartbeat(self, worker: str, now_ms: int) -> None:
        """A worker process is alive (its scheduler thread runs): for ``provisioner_workers_alive``. Forgets the
        processes silent for a day."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._workers, {worker: now_ms})
        pipe.zremrangebyscore(self._workers, "-inf", now_ms - 86_400_000)
        pipe.execute()

    def workers_alive(self, now_ms: int, *, within_ms: int) -> int:
        """Worker processes heard from within ``within_ms``. Reads only (the read-only operator's ``top`` asks)."""
        return int(self._redis.zcount(self._workers, now_ms - within_ms, "+inf"))

    def backlog(self, now_ms: int) -> int:
        """How many customers are due now (a gauge for SRE)."""
        return int(self._redis.zcount(self._key, "-inf", now_ms))
