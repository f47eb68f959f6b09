"""Admission at the edge: the HTTP API's way in, with the hand-off's guarantee and a verdict per event.

``Admission.admit`` validates each event against the contract, seals its KYC documents to the worker's intake key
(``worker.sealing``), and then, in **one Lua script** for the whole request, decides and applies:

============================  ==============================================================================
what Redis already holds       verdict, and what the script writes
============================  ==============================================================================
nothing under the event id    ``accepted``: the admission index entry, the hand-off record (``handoff.py``) and
                              the dramatiq message in its queue — together, or (Redis failed) not at all
the stored event, same        ``duplicate`` (same stored JSON and same documents digest as intake compares)
the stored event, other       ``conflict`` (the id was used for other content, or other KYC documents)
an admitted, unstored event   ``duplicate`` / ``conflict`` by its fingerprint (the same comparison, hashed)
…whose message is gone        ``accepted`` again for the same content (``conflict`` for other content): the
                              message left without its event being stored — a dead letter purged or expired
============================  ==============================================================================

An admission entry (``{p}:c:<ref>:admitted``, event id → ``fingerprint message-id queue``) holds a 2xx's promise
only while something holds the message: the hand-off (until a worker stores the event) or its dead letter as
dramatiq keeps it (``<queue>.XQ.msgs``, under the redis id the message died with — every enqueue, a retry or a
replay, takes a new one, which our dead-letter metadata ``{p}:dlq:<message id>`` names — until a purge, or until
dramatiq's maintenance drops it 7 days after it died; a replay keeps the message id and goes through the hand-off
again). An event dead-lettered before any worker stored it (a key rolled out in the wrong order, a clock the worker
finds skewed) and then purged or expired would otherwise answer ``duplicate`` for ever — or for the day our metadata
outlives the dead letter — and the upstream's re-send, the remedy the README gives, would enqueue nothing. A bare
fingerprint (entries before message ids) is held; metadata without the redis id (before it named one), while it
lives.

So a verdict is decided against what was already accepted — by this API, by ``provisioner publish`` once a
worker stored it — and, the script being atomic, concurrent identical requests get one ``accepted`` and the
rest ``duplicate``. An event is held the moment the script returns (as durably as Redis' AOF keeps what it
acknowledged: ``appendfsync always`` in production): the hand-off re-sends it if its
message is lost, and the worker's ingest script forgets the admission entry when it stores the event. An event
that fails the contract is ``refused`` (recorded, reason only, in the refused stream by the same script); each
refusal and conflict is counted for the exporter (``worker.store.refusal_counts``, ``stage=api``).

The script writes dramatiq's Redis layout itself (``{namespace}:{queue}`` list and ``{namespace}:{queue}.msgs``
hash, as dramatiq's ``dispatch.lua`` enqueues), so the message cannot be enqueued without its hand-off record or
the other way round; ``tests/api`` proves a real worker consumes it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import dramatiq
import redis

from handlers.erasure import is_copy_of_erased
from handlers.events import MAX_PHOTO_BYTES, EventRejected, IntakePolicy, KycApproved, parse_event
from handlers.naming import Naming
from worker.event_proof import PROOF_OPTION, EventProofs
from worker.intake import peek_event_id, readable_ids
from worker.runtime.actors import ENVELOPE, QUEUE_EVENTS, QUEUE_URGENT, actor_for, queue_for
from worker.sealing import IntakeSealer
from worker.store.customers import stored_form
from worker.store.epoch import NAMING_LUA, raise_if_naming_refused
from worker.store.keys import Keys
from worker.store.refusal_counts import count_field

__all__ = ["Admission", "AdmissionStatus", "Verdict", "awaiting_admitted", "dramatiq_namespace"]

_QUEUES = (QUEUE_EVENTS, QUEUE_URGENT)

HELD_LUA = """
-- an admitted entry is "fingerprint message-id queue-index" (a bare fingerprint before message ids: held; a fourth
-- field, written on 2026-12-05 only, is not read). queues: per queue index, {hand-off set, dramatiq list}; dead: the
-- dead-letter metadata key prefix. Returns fingerprint, held.
local function held(admitted, queues, dead)
  local fp, mid, qi = string.match(admitted, '^(%S+) (%S+) (%d)')
  if not fp then return admitted, true end
  local queue = queues[tonumber(qi)]
  if redis.call('ZSCORE', queue[1], mid) ~= false then return fp, true end
  -- its dead letter as dramatiq keeps it ("<queue>.XQ.msgs", under the redis id the message died with, which our
  -- metadata names: every enqueue, a retry or a replay, takes a new one), dropped by dramatiq's maintenance 7 days
  -- after the message died, a day before our metadata goes
  local rid = redis.call('HGET', dead .. mid, 'redis_message_id')
  if rid and rid ~= '' then return fp, redis.call('HEXISTS', queue[2] .. '.XQ.msgs', rid) == 1 end
  return fp, redis.call('EXISTS', dead .. mid) == 1  -- metadata written before it named the redis id
end
"""
"""Whether an admission entry is still held by its message (the hand-off, or its dead letter): one Lua function
shared by the admission script and ``awaiting_admitted``."""

_ANY_HELD = (
    HELD_LUA
    + """
-- KEYS: the customer's admitted index, then per queue (events, urgent): hand-off set, dramatiq list.
-- ARGV: the dead-letter metadata key prefix. Returns 1 if an entry is held by its message, else 0.
local queues = {{KEYS[2], KEYS[3]}, {KEYS[4], KEYS[5]}}
for _, admitted in ipairs(redis.call('HVALS', KEYS[1])) do
  local _, alive = held(admitted, queues, ARGV[1])
  if alive then return 1 end
end
return 0
"""
)

_ADMIT = (
    """
-- KEYS: refused stream, hand-off bodies, then per queue (events, urgent): hand-off set, dramatiq list, its .msgs;
--       then per event: the customer's admitted index; last, the refusal counts.
-- ARGV: number of events, refusals (JSON [[id, field, reason, count field], ...]), the count field of a conflict,
--       the dead-letter metadata key prefix ("{p}:dlq:"), this API's naming fingerprint, the state key (read only:
--       a deployment whose naming differs admits nothing), then per event: id, stored JSON, documents
--       digest, fingerprint, queue index (1 events, 2 urgent), message id, hand-off body, redis message id + body
--       as "rid\\nbody", then the names of the customer's events hash, documents digests and final refusals,
--       which the script only reads: named in ARGV, not KEYS, because Redis' ACL checks a script's KEYS for write
--       access, and the API's user (deploy/redis/users.acl) may only read a customer's keys.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local counts = KEYS[9 + n]
local dead = ARGV[4]
"""
    + NAMING_LUA.format(state="ARGV[6]", fingerprint="ARGV[5]")
    + HELD_LUA
    + """
local verdicts = {}
local queues = {{KEYS[3], KEYS[4]}, {KEYS[6], KEYS[7]}}
for i = 0, n - 1 do
  local k, a = 9 + i, 7 + 11 * i
  local id, stored, digest, fingerprint = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local events, digests = ARGV[a + 8], ARGV[a + 9]
  local existing = redis.call('HGET', events, id)
  local verdict
  if not existing and redis.call('HEXISTS', ARGV[a + 10], id) == 1 then
    verdict = 'refused_before'  -- told event.refused, final for the id: a worker would refuse this copy again
  elseif existing then
    if existing ~= stored or (redis.call('HGET', digests, id) or '') ~= digest then
      verdict = 'conflict'
    else
      verdict = 'duplicate'
    end
  else
    local admitted = redis.call('HGET', KEYS[k], id)
    local alive = false
    if admitted then
      local fp
      fp, alive = held(admitted, queues, dead)
      if fp ~= fingerprint then verdict = 'conflict' elseif alive then verdict = 'duplicate' end
    end
    if not verdict then
      local q = 3 + 3 * (tonumber(ARGV[a + 4]) - 1)
      local message_id, body, queued = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
      local cut = string.find(queued, '\\n', 1, true)
      local rid = string.sub(queued, 1, cut - 1)
      redis.call('HSET', KEYS[k], id, fingerprint .. ' ' .. message_id .. ' ' .. ARGV[a + 4])
      redis.call('ZADD', KEYS[q], now, message_id)
      redis.call('HSET', KEYS[2], message_id, body)
      redis.call('HSET', KEYS[q + 2], rid, string.sub(queued, cut + 1))
      redis.call('RPUSH', KEYS[q + 1], rid)
      verdict = 'accepted'
    end
  end
  if verdict == 'conflict' then redis.call('HINCRBY', counts, ARGV[3], 1) end
  verdicts[i + 1] = verdict
end
for _, r in ipairs(cjson.decode(ARGV[2])) do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', '100000', '*', 'event_id', r[1], 'ref', '', 'field', r[2],
             'reason', r[3], 'at_ms', tostring(now))
  redis.call('HINCRBY', counts, r[4], 1)
end
return verdicts
"""
)


def awaiting_admitted(client: redis.Redis, keys: Keys, ref: str) -> bool:
    """Whether an event admitted at the edge for ``ref`` (not stored by a worker yet) is still held by its message:
    in the hand-off, or in its dead letter as dramatiq keeps it. ``False`` when nothing was admitted, and when every
    admitted message is gone (its dead letter purged or expired): the upstream's re-send is then ``accepted`` again.
    Raises ``redis.RedisError``."""
    namespace = dramatiq_namespace(keys.prefix)
    queue_keys = [key for queue in _QUEUES for key in (keys.handoff(queue), f"{namespace}:{queue}")]
    held = client.register_script(_ANY_HELD)  # EVALSHA: the script's text is sent only the first time
    return bool(held(keys=[keys.admitted(ref), *queue_keys], args=[keys.dead_letter("")]))


def dramatiq_namespace(key_prefix: str) -> str:
    """The dramatiq namespace of a deployment (``worker.runtime.broker`` builds its broker with it)."""
    return f"{key_prefix}-dramatiq"


class AdmissionStatus(StrEnum):
    ACCEPTED = "accepted"
    """New: durably handed off to the worker."""
    DUPLICATE = "duplicate"
    """Already accepted with the same content: nothing more was done."""
    REFUSED = "refused"
    """The event breaks the contract (``field``, ``reason``): nothing was handed off."""
    CONFLICT = "conflict"
    """The id was already accepted with other content (or other KYC documents): refused."""


@dataclass(frozen=True)
class Verdict:
    """What became of one event. ``event_id`` is ``None`` when a refused event had no readable id."""

    status: AdmissionStatus
    event_id: str | None
    field: str | None = None
    reason: str | None = None


CONFLICT_REASON = "event id already accepted with different content (or other KYC documents); send a new id"
REFUSED_BEFORE_REASON = "event id refused before (told as event.refused, final for the id); send a new id"


@dataclass(frozen=True)
class _Prepared:
    event_id: str
    ref: str
    stored: str
    digest: str
    fingerprint: str
    queue_index: int
    message_id: str
    body: str
    queued: str


class Admission:
    """Admits events for the HTTP API. Holds the Redis client, the naming secret, the intake *public* key (nothing
    that opens what is sealed) and the event-signing keys: each message carries its event's proof
    (``worker.event_proof``)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        naming: Naming,
        sealer: IntakeSealer,
        *,
        proofs: EventProofs,
        currencies: frozenset[str],
        namespace: str,
        max_photo_bytes: int = MAX_PHOTO_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._keys = keys
        self._naming = naming
        self._sealer = sealer
        self._proofs = proofs
        self._currencies = currencies
        self._max_photo_bytes = max_photo_bytes
        self._namespace = namespace
        self._clock = clock
        self._script = client.register_script(_ADMIT)

    def admit(self, raws: Sequence[str | bytes | dict[str, Any]]) -> list[Verdict]:
        """Decide and apply every event of one request, in order; one verdict each. Raises ``redis.RedisError``
        when Redis fails: then either nothing of the request was applied, or all of it (the script is atomic, its
        answer may be what was lost) — sending the same request again is safe, and answers ``duplicate`` for what
        was applied."""
        policy = IntakePolicy(
            now=datetime.fromtimestamp(self._clock(), tz=UTC),
            currencies=self._currencies,
            max_photo_bytes=self._max_photo_bytes,
        )
        verdicts: list[Verdict | None] = []
        prepared: list[_Prepared] = []
        refusals: list[list[str]] = []
        for raw in raws:
            try:
                try:
                    prepared.append(self._prepare(raw, policy))
                except EventRejected:
                    if not self._held(raw):
                        raise
                    # a copy of an event accepted before: judged as it was then (its age, the clocks, the currencies
                    # and the photo limit are of that moment), so a retry answers duplicate, not a refusal
                    prepared.append(self._prepare(raw, None))
                verdicts.append(None)
            except EventRejected as exc:
                event_id = peek_event_id(raw)
                verdicts.append(Verdict(AdmissionStatus.REFUSED, event_id, exc.field, exc.reason))
                refusals.append([event_id or "", exc.field, exc.reason[:500], count_field("api", exc.field)])
        decided = self._apply(prepared, refusals) if prepared or refusals else []
        answers = iter(decided)
        return [v if v is not None else next(answers) for v in verdicts]

    def _apply(self, prepared: list[_Prepared], refusals: list[list[str]]) -> list[Verdict]:
        keys = [self._keys.refused, self._keys.handoff_bodies]
        for queue in _QUEUES:
            keys += [self._keys.handoff(queue), f"{self._namespace}:{queue}", f"{self._namespace}:{queue}.msgs"]
        args: list[Any] = [
            len(prepared),
            json.dumps(refusals),
            count_field("api", "id", conflict=True),
            self._keys.dead_letter(""),
            self._naming.fingerprint(),
            self._keys.state,
        ]
        for p in prepared:
            keys.append(self._keys.admitted(p.ref))
            args += [p.event_id, p.stored, p.digest, p.fingerprint, p.queue_index, p.message_id, p.body, p.queued]
            args += [self._keys.events(p.ref), self._keys.docs_digests(p.ref), self._keys.refusals(p.ref)]
        keys.append(self._keys.refused_counts)
        try:
            raw_verdicts = self._script(keys=keys, args=args, client=self._client)
        except redis.ResponseError as exc:
            raise_if_naming_refused(exc, self._client, self._keys, self._naming.fingerprint())
            raise
        verdicts = []
        for p, raw in zip(prepared, raw_verdicts, strict=True):
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            if text == "refused_before":
                verdicts.append(Verdict(AdmissionStatus.REFUSED, p.event_id, "id", REFUSED_BEFORE_REASON))
                continue
            status = AdmissionStatus(text)
            if status is AdmissionStatus.CONFLICT and self._copy_of_erased(p):
                status = AdmissionStatus.DUPLICATE
            reason = CONFLICT_REASON if status is AdmissionStatus.CONFLICT else None
            verdicts.append(Verdict(status, p.event_id, "id" if reason else None, reason))
        return verdicts

    def _copy_of_erased(self, p: _Prepared) -> bool:
        """Whether the event ``p``, its id's stored content contradicting it, is a copy of an event of an erased
        customer (its stored form pseudonymised since): a duplicate. Raises ``redis.RedisError``."""
        stored = self._client.hget(self._keys.events(p.ref), p.event_id)
        text = stored.decode() if isinstance(stored, bytes) else stored
        return isinstance(text, str) and is_copy_of_erased(text, p.stored, p.ref)

    def _held(self, raw: str | bytes | dict[str, Any]) -> bool:
        """Whether an event under the id of refused input ``raw`` was stored or admitted for its customer. Raises
        ``redis.RedisError``."""
        event_id, customer_id = readable_ids(raw)
        if not (event_id and customer_id):
            return False
        ref = self._naming.customer_ref(customer_id)
        with self._client.pipeline(transaction=False) as pipe:
            pipe.hexists(self._keys.events(ref), event_id)
            pipe.hexists(self._keys.admitted(ref), event_id)
            return any(pipe.execute())

    def _prepare(self, raw: str | bytes | dict[str, Any], policy: IntakePolicy | None) -> _Prepared:
        """Validate (``policy=None``: the checks of an event's form only), seal and encode one event (no I/O).
        Raises ``EventRejected``."""
        event = parse_event(raw, policy)
        ref = self._naming.customer_ref(event.customer_id)
        stored = stored_form(event)
        payload = event.model_dump(mode="json")
        digest = ""
        if isinstance(event, KycApproved) and event.data.kyc is not None:
            documents = event.data.kyc.model_dump(mode="json")
            digest = self._naming.documents_digest(json.dumps(documents, sort_keys=True, separators=(",", ":")))
            payload["data"]["kyc"] = {ENVELOPE: self._sealer.seal(documents, event_id=event.id).model_dump()}
        else:
            payload["data"].pop("kyc", None)
        queue = queue_for(payload)
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue,
            actor_name=actor_for(payload),
            args=(payload,),
            kwargs={},
            options={PROOF_OPTION: self._proofs.sign(payload)},
        )
        rid = str(uuid.uuid4())
        queued = message.copy(options={"redis_message_id": rid})
        return _Prepared(
            event_id=event.id,
            ref=ref,
            stored=stored,
            digest=digest,
            fingerprint=hashlib.sha256(f"{stored}\n{digest}".encode()).hexdigest(),
            queue_index=_QUEUES.index(queue) + 1,
            message_id=message.message_id,
            body=message.encode().decode("utf-8"),
            queued=f"{rid}\n{queued.encode().decode('utf-8')}",
        )
