"""The customer store: intake of events, snapshots for the planner, and fenced atomic commits.

``commit`` is the only way a record changes. One Lua script checks the lock token (fencing) and the record
version, writes the record, appends the journal entries and the outbound events, and applies the side effects
(drop submitted KYC documents, mark closed) — all or nothing, so a crash can never leave a key recorded
without its outbound delivery, or a journal without its state.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import redis

from handlers.desired import DesiredState, carries_funding, fold
from handlers.events import Event, EventRejected, KycApproved, parse_event
from handlers.journal import JournalAction
from handlers.records import CustomerRecord, SealedSecret
from worker.ratelimit import ACQUIRE_FUNCTION
from worker.store.epoch import (
    GUARD_LUA,
    NAMING_LUA,
    StateGuard,
    StateLost,
    raise_if_naming_refused,
    raise_if_state_lost,
)
from worker.store.keys import Keys
from worker.store.ledger import RESERVE_FUNCTION
from worker.store.lock import CustomerLock
from worker.store.outbound import SEQUENCED_XADD, OutboundEvent, OutboundLog
from worker.store.riders import Rider, RiderRefused

__all__ = [
    "CommitRejected",
    "Committed",
    "CustomerStore",
    "IngestResult",
    "JournalEntry",
    "OutboundEvent",
    "Snapshot",
    "Taken",
    "stored_form",
]

# The outbound stream is never trimmed here: it carries encrypted credentials that a lagging consumer must not
# lose. The consumer trims what it has processed (``XTRIM <key> MINID <id>``).


_INGEST_FUNCTION = (
    "local function ingest(KEYS, ARGV)\n"
    + GUARD_LUA.format(state=11, epoch=7, hwm=8)
    + """
redis.call('HDEL', KEYS[14], ARGV[1])  -- admitted at the edge: from here on the stored event answers for it
if ARGV[6] ~= '' then
  redis.call('ZREM', KEYS[8], ARGV[6])
  redis.call('HDEL', KEYS[9], ARGV[6])
  redis.call('HDEL', KEYS[10], ARGV[6])
end
-- a copy of a stored event answers as one, closed customer or not (the offboarding's own message delivered again
-- after the close took effect: never "ignored")
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then
  if existing ~= ARGV[2] then return {'conflict', writes} end
  local digest = redis.call('HGET', KEYS[12], ARGV[1]) or ''
  if digest ~= ARGV[9] then return {'conflict_documents', writes} end
  return {'duplicate', writes}
end
local closed = redis.call('GET', KEYS[1])
if closed and not (ARGV[10] == '1' and string.sub(closed, 1, 10) == 'recovered:') then return {'closed', writes} end
-- refused before, and the upstream was told: final for the id (a replayed dead letter, a re-send)
if redis.call('HEXISTS', KEYS[15], ARGV[1]) == 1 then return {'refused', writes} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('RPUSH', KEYS[13], ARGV[2])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[12], ARGV[1], ARGV[9]) end
if ARGV[3] ~= '' then
  redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[3])
  redis.call('SADD', KEYS[6], ARGV[1])
end
redis.call('ZADD', KEYS[4], 'NX', ARGV[5], ARGV[4])
redis.call('ZADD', KEYS[5], 'GT', ARGV[5], ARGV[4])
redis.call('INCR', KEYS[7])
return {'new', writes}
end
"""
)
_INGEST = _INGEST_FUNCTION + "return ingest(KEYS, ARGV)\n"

_COMMIT = (
    SEQUENCED_XADD
    + ACQUIRE_FUNCTION
    + RESERVE_FUNCTION
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lock no longer held') end"""
    + GUARD_LUA.format(state=12, epoch=10, hwm=11)
    + """
if tonumber(ARGV[9]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[9]) end
local current = redis.call('GET', KEYS[2])
local version = 0
if current then version = tonumber(cjson.decode(current)['version']) end
if version ~= tonumber(ARGV[2]) then return redis.error_reply('STALE record version changed') end
-- riders (worker.store.riders), in order, before the first write: ARGV[12] lists [name, keys, args, soft] of each;
-- their keys follow KEYS[13], their arguments ARGV[12]. A refusal writes nothing of the commit; a soft rider's
-- answer is returned with it.
local ki, ai = 14, 13
local answers = {}
for position, rider in ipairs(cjson.decode(ARGV[12])) do
  local rk, ra = {}, {}
  for i = 1, rider[2] do rk[i] = KEYS[ki]; ki = ki + 1 end
  for i = 1, rider[3] do ra[i] = ARGV[ai]; ai = ai + 1 end
  if rider[1] == 'reserve' then
    if ledger_reserve(rk, ra) == 0 then return {0, writes, 'reserve', position} end
  elseif rider[1] == 'admit' then
    local wait = tonumber(rl_acquire(rk, ra)[1])
    if rider[4] == 1 then
      answers[#answers + 1] = wait
    elseif wait > 0 then
      return {0, writes, 'admit', wait}
    end
  else
    return redis.error_reply('RIDER unknown ' .. tostring(rider[1]))
  end
end
redis.call('SET', KEYS[2], ARGV[3])
for _, entry in ipairs(cjson.decode(ARGV[4])) do
  redis.call('XADD', KEYS[3], '*', 'entry', entry)
end
for _, event in ipairs(cjson.decode(ARGV[5])) do
  sequenced_xadd(KEYS[4], KEYS[13], ARGV[8], true, event[1], event[2], event[3], event[4])
end
local effects = cjson.decode(ARGV[6])
for _, event_id in ipairs(effects['drop_documents']) do redis.call('HDEL', KEYS[5], event_id) end
if effects['close'] or effects['drop_all_documents'] then redis.call('DEL', KEYS[5]) end
if effects['close'] then
  redis.call('SET', KEYS[6], effects['close_mark'] .. ARGV[7])
  redis.call('ZREM', KEYS[7], ARGV[8])
end
if tonumber(effects['blocked_since']) > 0 then
  redis.call('ZADD', KEYS[10], effects['blocked_since'], ARGV[8])
else
  redis.call('ZREM', KEYS[10], ARGV[8])
end
if tonumber(effects['pending_since']) > 0 then
  redis.call('ZADD', KEYS[8], effects['pending_since'], ARGV[8])
else
  redis.call('ZREM', KEYS[8], ARGV[8])
end
for field, delta in pairs(effects['stats']) do redis.call('HINCRBY', KEYS[9], field, delta) end
local dirty = 0
if redis.call('DEL', KEYS[11]) == 1 then dirty = 1 end
if #answers > 0 then return {dirty, writes, '', 0, unpack(answers)} end
return {dirty, writes}
"""
)
_LOCK_AND_READ_FUNCTION = """
local function lock_and_read(KEYS, ARGV)
-- KEYS: lock, fence, record, events, docs received, seq, dirty, due, state, events log.
-- ARGV: uuid, ttl, ref, busy wake-up (ms), epoch, high-water mark, events already parsed by the caller
local guard = redis.call('HMGET', KEYS[9], 'epoch', 'halted', 'writes')
if guard[2] then return redis.error_reply('STATELOST halted ' .. guard[2]) end
if not guard[1] then return redis.error_reply('STATELOST missing the state epoch is gone') end
if guard[1] ~= ARGV[5] then return redis.error_reply('STATELOST changed the state epoch changed') end
if tonumber(guard[3] or '0') < tonumber(ARGV[6]) then
  return redis.error_reply('STATELOST rolled_back the state went back to an earlier write')
end
local token = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1]
if not redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2]) then
  -- busy: the holder looks again before it lets go (the flag); the wake-up covers the moment after its last look
  redis.call('SET', KEYS[7], '1', 'PX', ARGV[2])
  redis.call('ZADD', KEYS[8], 'LT', ARGV[4], ARGV[3])
  return false
end
local seq = tonumber(redis.call('GET', KEYS[6]) or '0')
local from, events = -1, nil
if redis.call('LLEN', KEYS[10]) == seq then
  -- the log holds every event: send only those after the ones the caller has already parsed
  from = tonumber(ARGV[7])
  if from > seq then from = 0 end
  events = redis.call('LRANGE', KEYS[10], from, -1)
else
  events = redis.call('HVALS', KEYS[4])  -- a customer stored before the log existed: everything
end
return {token, redis.call('GET', KEYS[3]) or '', events, redis.call('SMEMBERS', KEYS[5]), tostring(seq),
        guard[3] or '0', from}
end
"""
_LOCK_AND_READ = _LOCK_AND_READ_FUNCTION + "return lock_and_read(KEYS, ARGV)\n"
_INGEST_AND_LOCK = (
    _INGEST_FUNCTION
    + _LOCK_AND_READ_FUNCTION
    + """
-- KEYS: ingest's 15, then lock_and_read's 10; ARGV: ingest's 10, then lock_and_read's 7. The lock is asked for only
-- when the event is taken (new or a duplicate): a refused or ignored event starts no reconcile.
local function slice(t, from, n)
  local out = {}
  for i = 1, n do out[i] = t[from + i - 1] end
  return out
end
local stored = ingest(slice(KEYS, 1, 15), slice(ARGV, 1, 10))
if stored.err or (stored[1] ~= 'new' and stored[1] ~= 'duplicate') then return stored end
local taken = lock_and_read(slice(KEYS, 16, 10), slice(ARGV, 11, 7))
if type(taken) == 'table' and taken.err then return taken end
return {stored[1], stored[2], taken}
"""
)


_RECORD_REFUSAL = (
    """
-- KEYS: refusal counts, refused stream, the customer's final refusals, its events (the last two only when final),
-- the state. ARGV: counted as, event id, ref, field, reason, now ms, refusals ttl s, final ('1'/'0'), this
-- process's naming fingerprint ('' : none). Returns 0 when the event was stored meanwhile (nothing recorded),
-- else 1; an error when the deployment names customers otherwise (the ref would be another's).
"""
    + NAMING_LUA.format(state="KEYS[5]", fingerprint="ARGV[9]")
    + """
if ARGV[8] == '1' and redis.call('HEXISTS', KEYS[4], ARGV[2]) == 1 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if ARGV[8] == '1' then
  redis.call('HSETNX', KEYS[3], ARGV[2], ARGV[4] .. '\\n' .. ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[7])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'event_id', ARGV[2], 'ref', ARGV[3], 'field', ARGV[4],
           'reason', ARGV[5], 'at_ms', ARGV[6])
return 1
"""
)


class IngestResult(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    """Same event id, different content: refused."""
    CONFLICT_DOCUMENTS = "conflict_documents"
    """Same event id and content, but other KYC documents (or documents only one of them had): refused, since
    the documents of an id are stored once."""
    CLOSED = "closed"
    """The customer was offboarded and closed: the event is ignored (and reported)."""
    REFUSED = "refused"
    """The event id was refused before and the upstream told so (``CustomerStore.refusal``): refused again."""


class CommitRejected(Exception):  # noqa: N818 - reads as what happened
    """The commit was refused: the lock was lost (fencing) or the record changed underneath (version)."""


@dataclass(frozen=True)
class JournalEntry:
    """One line of a customer's audit journal. ``detail`` must never hold a secret."""

    at_ms: int
    action: JournalAction
    detail: dict[str, Any] = field(default_factory=dict)
    actor: str = "worker"

    def to_json(self) -> str:
        return json.dumps(
            {"at_ms": self.at_ms, "actor": self.actor, "action": self.action, **self.detail},
            separators=(",", ":"),
            default=str,
        )


@dataclass(frozen=True)
class Snapshot:
    record: CustomerRecord | None
    events: tuple[Event, ...]
    documents: frozenset[str]
    seq: int = 0
    """How many events had been stored when this was read: a run that finishes on it saw exactly those."""


@dataclass(frozen=True)
class Taken:
    """A customer's lock asked for in the script that stored its event (``CustomerStore.ingest_and_lock``)."""

    lock: CustomerLock
    snapshot: Snapshot | None
    """What ``lock_and_snapshot`` would have returned: ``None`` when another run holds the customer (its dirty flag
    was raised and the customer made due, as there)."""


class Committed(NamedTuple):
    record: CustomerRecord
    dirty: bool
    """A run that found the customer busy raised its flag since the last look: read the events again."""
    answers: tuple[int, ...] = ()
    """What the commit's soft riders answered, in order (``worker.store.riders``)."""


class EventCache:
    """The events of recently reconciled customers, parsed, per process (an LRU of ``size`` customers): a
    customer's events are append-only, so a read fetches and parses only those stored since the last one."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[Event, ...]] = OrderedDict()
        self._folded: dict[str, tuple[int, frozenset[str], DesiredState]] = {}
        self._lock = threading.Lock()

    def desired(self, ref: str, events: tuple[Event, ...], documents: frozenset[str]) -> DesiredState:
        """``fold(events)``, computed once per set of events (the last one of each customer is kept)."""
        with self._lock:
            known = self._folded.get(ref)
            if known is not None and known[0] == len(events) and known[1] == documents:
                return known[2]
        folded = fold(events, documents_held=documents)
        with self._lock:
            if ref in self._entries:
                self._folded[ref] = (len(events), documents, folded)
        return folded

    def count(self, ref: str) -> int:
        with self._lock:
            entry = self._entries.get(ref)
            return len(entry) if entry is not None else 0

    def extend(self, ref: str, start: int, parsed: tuple[Event, ...]) -> tuple[Event, ...] | None:
        """The customer's events, given ``parsed`` read from log position ``start`` (-1: ``parsed`` is all); ``None``
        when the cache no longer holds what came before ``start`` (another read evicted it meanwhile): read all."""
        with self._lock:
            cached = self._entries.get(ref, ())
            if start > len(cached):
                return None
            events = parsed if start < 0 else cached[:start] + parsed
            self._entries[ref] = events
            self._entries.move_to_end(ref)
            while len(self._entries) > self._size:
                gone, _ = self._entries.popitem(last=False)
                self._folded.pop(gone, None)
            return events


class CustomerStore:
    """Every write to a customer's events and record. Each script is guarded by the state epoch (``guard``):
    it refuses with ``StateLost`` when Redis is not the state this process established."""

    def __init__(self, client: redis.Redis, keys: Keys, guard: StateGuard) -> None:
        self.redis = client
        self.keys = keys
        self.guard = guard
        self._events = EventCache()
        self._ingest = client.register_script(_INGEST)
        self._commit = client.register_script(_COMMIT)
        self._lock_and_read = client.register_script(_LOCK_AND_READ)
        self._ingest_and_lock = client.register_script(_INGEST_AND_LOCK)
        self._record_refusal = client.register_script(_RECORD_REFUSAL)
        self._outbound = OutboundLog(client, keys)

    def ingest(
        self,
        ref: str,
        event: Event,
        *,
        sealed_documents: SealedSecret | None,
        now_ms: int,
        handoff_id: str = "",
        handoff_queue: str = "",
        documents_digest: str = "",
    ) -> IngestResult:
        """Store an accepted event for ``ref`` unless it is a duplicate, a conflicting reuse of its id, or the
        customer is closed — unless it closed after a loss of our state and the event carries funding lines (they
        may have been paid before the loss: the planner accounts for them, never sends). KYC documents are stored
        only sealed, and only with a new event; ``documents_digest``
        (a keyed digest of them, ``""`` without) tells a re-send with other documents from a duplicate. Whatever
        the outcome, the message ``handoff_id`` of queue ``handoff_queue`` (see ``worker.runtime.handoff``) has
        been dealt with: it is forgotten in the same script, and so is the event's admission at the edge
        (``worker.runtime.admission``). Raises ``StateLost``."""
        keys, args = self._ingest_call(
            ref,
            event,
            sealed_documents=sealed_documents,
            now_ms=now_ms,
            handoff_id=handoff_id,
            handoff_queue=handoff_queue,
            documents_digest=documents_digest,
        )
        outcome, writes = self._guarded(self._ingest, keys=keys, args=args)
        self.guard.observe(int(writes))
        return IngestResult(_text(outcome))

    def ingest_and_lock(
        self,
        ref: str,
        event: Event,
        *,
        lock: CustomerLock,
        busy_wake_at_ms: int,
        sealed_documents: SealedSecret | None,
        now_ms: int,
        handoff_id: str = "",
        handoff_queue: str = "",
        documents_digest: str = "",
    ) -> tuple[IngestResult, Taken | None]:
        """``ingest``, and for an event taken (new or a duplicate) ``lock_and_snapshot`` in the same script: one
        round trip for the event and the start of its reconcile. Returns the outcome and, for a taken event, the
        lock and the snapshot (``None`` when busy); ``None`` for a refused or ignored event (nothing locked). Raises
        ``StateLost``."""
        if lock.ref != ref:
            raise ValueError(f"lock of {lock.ref} asked for with an event of {ref}")
        ingest_keys, ingest_args = self._ingest_call(
            ref,
            event,
            sealed_documents=sealed_documents,
            now_ms=now_ms,
            handoff_id=handoff_id,
            handoff_queue=handoff_queue,
            documents_digest=documents_digest,
        )
        lock_keys, lock_args = self._lock_call(lock, busy_wake_at_ms)
        result = self._guarded(
            self._ingest_and_lock,
            keys=[*ingest_keys, *lock_keys],
            args=lambda epoch, hwm: [*ingest_args(epoch, hwm), *lock_args(epoch, hwm)],
        )
        outcome, writes = IngestResult(_text(result[0])), result[1]
        self.guard.observe(int(writes))
        if len(result) < 3:
            return outcome, None
        return outcome, Taken(lock, self._taken(lock, result[2]))

    def _ingest_call(
        self,
        ref: str,
        event: Event,
        *,
        sealed_documents: SealedSecret | None,
        now_ms: int,
        handoff_id: str,
        handoff_queue: str,
        documents_digest: str,
    ) -> tuple[list[str], Callable[[str, int], list[Any]]]:
        """The keys and the arguments (given the epoch and high-water mark) of the ingest script."""
        stored = _without_documents(event)
        docs = sealed_documents.model_dump_json() if sealed_documents is not None else ""
        k = self.keys
        return (
            [
                k.closed(ref),
                k.events(ref),
                k.docs(ref),
                k.customers,
                k.inbox,
                k.docs_received(ref),
                k.seq(ref),
                k.handoff(handoff_queue or "-"),
                k.handoff_bodies,
                k.handoff_resends,
                k.state,
                k.docs_digests(ref),
                k.events_log(ref),
                k.admitted(ref),
                k.refusals(ref),
            ],
            lambda epoch, hwm: [
                event.id,
                stored,
                docs,
                ref,
                now_ms,
                handoff_id,
                epoch,
                hwm,
                documents_digest,
                "1" if carries_funding(event) else "0",
            ],
        )

    def desired(self, ref: str, snapshot: Snapshot) -> DesiredState:
        """What the snapshot's events ask for (``handlers.desired.fold``), folded once per set of events."""
        return self._events.desired(ref, snapshot.events, snapshot.documents)

    def snapshot(self, ref: str) -> Snapshot:
        """The record (or ``None`` before the first commit), the accepted events, and which approvals came with
        KYC documents (whether or not those are still held: they are deleted once submitted)."""
        cached = self._events.count(ref)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.keys.seq(ref))  # first: the events read after it include every event it counts
        pipe.get(self.keys.record(ref))
        pipe.llen(self.keys.events_log(ref))
        pipe.lrange(self.keys.events_log(ref), cached, -1)
        pipe.smembers(self.keys.docs_received(ref))
        seq, raw_record, logged, raw_new, doc_ids = pipe.execute()
        if int(logged) < int(seq or 0) or cached > int(logged):  # stored before the log existed: read them all
            return self._snapshot(ref, raw_record, self.redis.hvals(self.keys.events(ref)), doc_ids, seq, start=-1)
        return self._snapshot(ref, raw_record, raw_new, doc_ids, seq, start=cached)

    def lock_and_snapshot(self, lock: CustomerLock, *, busy_wake_at_ms: int) -> Snapshot | None:
        """Take ``lock`` and read the snapshot in the same script (one round trip). If another run holds the
        customer, raise its dirty flag (it looks at the events again before it lets go), make sure the customer is
        due by ``busy_wake_at_ms`` (the safety net for the moment after its last look) and return ``None``."""
        keys, args = self._lock_call(lock, busy_wake_at_ms)
        return self._taken(lock, self._guarded(self._lock_and_read, keys=keys, args=args))

    def _lock_call(self, lock: CustomerLock, busy_wake_at_ms: int) -> tuple[list[str], Callable[[str, int], list[Any]]]:
        """The keys and the arguments (given the epoch and high-water mark) of the lock-and-read script."""
        k, ref = self.keys, lock.ref
        cached = self._events.count(ref)
        return (
            [
                k.lock(ref),
                k.fence,
                k.record(ref),
                k.events(ref),
                k.docs_received(ref),
                k.seq(ref),
                k.dirty(ref),
                k.due,
                k.state,
                k.events_log(ref),
            ],
            lambda epoch, hwm: [uuid.uuid4().hex, lock.ttl_ms, ref, busy_wake_at_ms, epoch, hwm, cached],
        )

    def _taken(self, lock: CustomerLock, result: Any) -> Snapshot | None:
        """The lock-and-read script's answer: ``lock`` adopts its token and the snapshot is parsed (``None``: busy)."""
        if not result:
            return None
        token, raw_record, raw_events, doc_ids, seq, writes, start = result
        self.guard.observe(int(writes))
        lock.adopt(_text(token))
        return self._snapshot(lock.ref, raw_record or None, raw_events, doc_ids, seq, start=int(start))

    def _snapshot(
        self, ref: str, raw_record: Any, raw_events: Iterable[Any], doc_ids: Iterable[Any], seq: Any, *, start: int
    ) -> Snapshot:
        """Parse what was read; ``start`` is where in the log the events begin (-1: every event, not from the log)."""
        record = CustomerRecord.model_validate_json(raw_record) if raw_record else None
        parsed = tuple(parse_event(_text(e), None) for e in raw_events)
        events = self._events.extend(ref, start, parsed)
        if events is None:  # evicted meanwhile: the events before ``start`` must be read again (they only grow)
            everything = tuple(parse_event(_text(e), None) for e in self.redis.hvals(self.keys.events(ref)))
            events = self._events.extend(ref, -1, everything) or everything
        return Snapshot(record, events, frozenset(_text(d) for d in doc_ids), int(seq or 0))

    def load(self, ref: str) -> CustomerRecord | None:
        raw = self.redis.get(self.keys.record(ref))
        return CustomerRecord.model_validate_json(raw) if raw else None

    def load_many(self, refs: Sequence[str], *, chunk: int = 500) -> dict[str, CustomerRecord]:
        """The records of ``refs`` that exist, ``chunk`` per round trip."""
        found: dict[str, CustomerRecord] = {}
        for start in range(0, len(refs), chunk):
            part = refs[start : start + chunk]
            for ref, raw in zip(part, self.redis.mget([self.keys.record(r) for r in part]), strict=True):
                if raw:
                    found[ref] = CustomerRecord.model_validate_json(raw)
        return found

    def held_documents(self, ref: str) -> frozenset[str]:
        """Ids of the approvals whose KYC documents are still held (sealed)."""
        return frozenset(_text(i) for i in self.redis.hkeys(self.keys.docs(ref)))

    def sealed_documents(self, ref: str, event_id: str) -> SealedSecret | None:
        raw = self.redis.hget(self.keys.docs(ref), event_id)
        return SealedSecret.model_validate_json(raw) if raw else None

    def commit(
        self,
        token: str,
        previous: CustomerRecord | None,
        record: CustomerRecord,
        *,
        journal: Sequence[JournalEntry] = (),
        outbound: Sequence[OutboundEvent] = (),
        drop_documents: Sequence[str] = (),
        drop_all_documents: bool = False,
        close: bool = False,
        stats: dict[str, int] | None = None,
        now_ms: int = 0,
        renew_lock_ms: int = 0,
        riders: Sequence[Rider] = (),
    ) -> Committed:
        """Write ``record`` (as version previous+1) with its journal, outbound events and side effects, atomically.

        Each outbound event takes the customer's next outbound sequence number in the same script
        (``worker.store.outbound``). Side effects: drop submitted KYC documents (every one held with
        ``drop_all_documents``, once the KYC is decided, and on ``close``; an offboarded customer's, named in
        ``drop_documents``), mark the customer closed, keep the pending-intents index in step with the record, add
        ``stats`` deltas to the shared counters (active keys, ...), extend the lock by ``renew_lock_ms`` if
        positive, and take the customer's dirty flag (a run that found it busy raised it).

        ``riders`` (``worker.store.riders``: the rate limiter's admission, the day's cap reservation) are asked in
        order once the lock, state and version checks passed, before anything is written.

        Raises ``CommitRejected`` if ``token`` no longer holds the lock or the stored version is not
        ``previous``'s, ``StateLost`` if Redis is not the state this process established, ``RiderRefused`` (nothing
        written) if a rider refused. Returns the record as written and whether the dirty flag was up.
        """
        expected = previous.version if previous is not None else 0
        written = record.model_copy(update={"version": expected + 1})
        k, ref = self.keys, record.ref
        fixed = [
            token,
            expected,
            written.model_dump_json(),
            json.dumps([e.to_json() for e in journal]),
            json.dumps([[o.id, o.type, *o.parts()] for o in outbound]),
            json.dumps(
                {
                    "drop_documents": list(drop_documents),
                    "drop_all_documents": drop_all_documents,
                    "close": close,
                    # a record rebuilt after a loss may close before events that carry lines paid before the loss
                    # come back: those are still accepted, for their lines to be accounted for (never sent)
                    "close_mark": "recovered:" if written.recovered_at_ms is not None else "",
                    # the age of an unknown outcome counts from the write's first send, not its latest
                    "pending_since": written.pending.first_at_ms if written.pending else 0,
                    "blocked_since": min((b.at_ms for b in written.blocked.values()), default=0),
                    "stats": stats or {"_": 0},
                }
            ),
            now_ms,
            ref,
            renew_lock_ms,
        ]
        ridden = json.dumps([[r.name, len(r.keys), len(r.args), 1 if r.soft else 0] for r in riders])
        try:
            result = self._guarded(
                self._commit,
                keys=[
                    k.lock(ref),
                    k.record(ref),
                    k.journal(ref),
                    k.outbound,
                    k.docs(ref),
                    k.closed(ref),
                    k.due,
                    k.pending,
                    k.stats,
                    k.blocked,
                    k.dirty(ref),
                    k.state,
                    k.outbound_seq(ref),
                    *(key for r in riders for key in r.keys),
                ],
                args=lambda epoch, hwm: [*fixed, epoch, hwm, ridden, *(arg for r in riders for arg in r.args)],
            )
        except redis.ResponseError as exc:
            raise CommitRejected(str(exc)) from None
        dirty, writes = result[0], result[1]
        self.guard.observe(int(writes))
        if len(result) > 2 and _text(result[2]):
            raise RiderRefused(_text(result[2]), int(result[3]))
        return Committed(written, bool(dirty), tuple(int(a) for a in result[4:]))

    def _guarded(self, script: Any, *, keys: list[str], args: Callable[[str, int], list[Any]]) -> Any:
        """Run a guarded script with the arguments ``args(epoch, high-water mark)`` builds; its ``STATELOST``
        refusal becomes ``StateLost`` — unless the epoch changed to an operator's recovered epoch that succeeds
        ours (``provisioner recover`` on a sound state), in which case it runs again in that epoch."""
        epoch, hwm = self.guard.args()
        try:
            return script(keys=keys, args=args(epoch, hwm))
        except redis.ResponseError as exc:
            try:
                raise_if_state_lost(exc)
            except StateLost as lost:
                if lost.kind != "changed" or not self.guard.adopt_successor():
                    raise
            else:
                raise
            epoch, hwm = self.guard.args()
            try:
                return script(keys=keys, args=args(epoch, hwm))
            except redis.ResponseError as again:
                raise_if_state_lost(again)
                raise

    def journal(self, ref: str, *, count: int = 1000) -> list[dict[str, Any]]:
        """The customer's journal, oldest first."""
        rows: Any = self.redis.xrange(self.keys.journal(ref), count=count)
        return [json.loads(fields["entry"]) for _, fields in rows]

    def stored_event(self, ref: str, event_id: str) -> str | None:
        """The JSON event ``event_id`` of ``ref`` is stored as, or ``None``. Raises ``redis.RedisError``."""
        raw = self.redis.hget(self.keys.events(ref), event_id)
        return None if raw is None else _text(raw)

    def event_occurred_ms(self, ref: str, event_id: str) -> int | None:
        """When stored event ``event_id`` of ``ref`` occurred (the upstream's ``occurred_at``, ms), or ``None``.
        Raises ``redis.RedisError``."""
        raw = self.redis.hget(self.keys.events(ref), event_id)
        if raw is None:
            return None
        try:
            return parse_event(_text(raw), None).occurred_ns // 1_000_000
        except EventRejected:
            return None

    def holds_event(self, ref: str, event_id: str) -> bool:
        """Whether an event was stored under ``event_id`` for ``ref``. Raises ``redis.RedisError``."""
        return bool(self.redis.hexists(self.keys.events(ref), event_id))

    def refusal(self, ref: str, event_id: str) -> tuple[str, str] | None:
        """The final refusal of ``event_id`` (field, reason), or ``None``. Raises ``redis.RedisError``."""
        raw = self.redis.hget(self.keys.refusals(ref), event_id)
        if raw is None:
            return None
        field_path, _, reason = _text(raw).partition("\n")
        return field_path, reason

    def report(self, event: OutboundEvent, *, ref: str | None) -> None:
        """Tell the upstream of something outside a commit (a refused or ignored event): append ``event`` to the
        outbound stream, numbered in customer ``ref``'s sequence when it is known."""
        self._outbound.append(event, ref=ref)

    def record_refusal(
        self,
        *,
        event_id: str | None,
        ref: str | None,
        reason: str,
        field_path: str,
        now_ms: int,
        counted_as: str,
        final: bool = False,
    ) -> bool:
        """Append a refused event (id, customer ref, reason; never the payload) to the refused stream, and count it
        under ``counted_as`` (``worker.store.refusal_counts.count_field``), in one script. ``final``: the refusal
        is told to the upstream as the end of that event id, so intake refuses any later copy of it the same way
        (``IngestResult.REFUSED``; kept ``Keys.REFUSALS_TTL_S`` after the customer's last refusal) — unless a copy
        of the event was stored meanwhile (another worker, whose settings or clock took it): then nothing is
        recorded and False is returned (the copy is a duplicate, not a refusal). Raises ``NamingMismatch`` when
        the deployment's naming is not this process's (checked on every refusal: a long-lived publisher may have
        started before any was recorded), and ``redis.RedisError``."""
        k = self.keys
        final_for = ref if final and event_id and ref else ""
        fingerprint = self.guard.naming_fingerprint or ""
        try:
            recorded = self._record_refusal(
                keys=[
                    k.refused_counts,
                    k.refused,
                    k.refusals(final_for) if final_for else k.refused,
                    k.events(final_for) if final_for else k.refused,
                    k.state,
                ],
                args=[
                    counted_as,
                    event_id or "",
                    ref or "",
                    field_path,
                    reason[:500],
                    str(now_ms),
                    Keys.REFUSALS_TTL_S,
                    "1" if final_for else "0",
                    fingerprint,
                ],
            )
        except redis.ResponseError as exc:
            raise_if_naming_refused(exc, self.redis, k, fingerprint)
            raise
        return bool(recorded)


def stored_form(event: Event) -> str:
    """The JSON an accepted event is stored as (its KYC documents removed): what a re-send must equal."""
    return _without_documents(event)


def _without_documents(event: Event) -> str:
    if isinstance(event, KycApproved) and event.data.kyc is not None:
        event = event.model_copy(update={"data": event.data.model_copy(update={"kyc": None})})
    return event.model_dump_json()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
