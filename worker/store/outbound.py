"""Outbound events (outcomes for the upstream) and how they are appended to the ``{prefix}:outbound`` stream.

Every entry of the stream has the fields ``id`` (the event's deterministic id), ``type``, ``ref`` (our customer
ref, ``""`` for an event about no customer), ``sequence`` (``""`` when not numbered: about no customer we hold)
and ``event`` (the JSON the upstream receives, on the stream and as a webhook body). ``sequence`` is the
customer's outbound sequence number — 1, 2, 3, … with no gap, in stream order — taken by the same script that
appends the entry (``SEQUENCED_XADD``), so two writers can never take the same number or append out of order.
The event JSON carries it too::

    {"id": "...", "type": "...", "sequence": 7, "customer_id": "...", "customer_ref": "...", "occurred_at": ...}

Timestamps in events are RFC 3339, UTC, milliseconds, ``Z`` (``rfc3339``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from worker.store.keys import Keys

__all__ = ["SEQUENCED_XADD", "OutboundEvent", "OutboundLog", "rfc3339"]

RESERVED = frozenset({"id", "type", "sequence"})
"""Envelope fields the payload may not carry: the stream script sets ``sequence``."""

SEQUENCED_XADD = """
local function sequenced_xadd(stream, seq_key, ref, numbered, id, kind, head, tail)
  local seq = ''
  local body = head .. ',"sequence":null' .. tail
  if numbered then
    seq = redis.call('INCR', seq_key)
    body = head .. ',"sequence":' .. seq .. tail
  end
  return redis.call('XADD', stream, '*', 'id', id, 'type', kind, 'ref', ref, 'sequence', seq, 'event', body)
end
"""
"""Lua: append one event about customer ``ref`` (``''``: none), numbered in its sequence if ``numbered``."""

_APPEND = (
    SEQUENCED_XADD
    + """
-- KEYS: stream, the customer's outbound sequence, its events (each any key when ARGV[1] is '').
-- ARGV: ref, id, type, head, tail. Numbered only for a customer we hold (an event of it was stored): a refusal
-- naming an unknown customer creates no key.
local numbered = ARGV[1] ~= '' and redis.call('EXISTS', KEYS[3]) == 1
return sequenced_xadd(KEYS[1], KEYS[2], ARGV[1], numbered, ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""
)


def rfc3339(ms: int) -> str:
    """``ms`` since the epoch as RFC 3339 in UTC with milliseconds and ``Z``: ``2026-11-18T11:06:40.000Z``."""
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


@dataclass(frozen=True)
class OutboundEvent:
    """An outcome event for the upstream. ``id`` is deterministic (the same outcome always has the same id), so a
    consumer that sees an event twice can drop the copy. ``payload`` must not carry ``id``, ``type`` or
    ``sequence``: the stream script numbers the event."""

    id: str
    type: str
    payload: dict[str, Any]

    def __post_init__(self) -> None:
        clash = RESERVED & set(self.payload)
        if clash:
            raise ValueError(f"outbound payload may not set {sorted(clash)}")

    def parts(self) -> tuple[str, str]:
        """The event JSON split where the script puts ``"sequence"``: ``{"id":…,"type":…`` and ``,…}``."""
        head = json.dumps({"id": self.id, "type": self.type}, separators=(",", ":"))[:-1]
        rest = json.dumps(self.payload, separators=(",", ":"), default=str)
        tail = "}" if rest == "{}" else "," + rest[1:]
        return head, tail

    def to_json(self, sequence: int | None = None) -> str:
        """The event JSON as the stream carries it, with ``sequence`` (what the script writes)."""
        head, tail = self.parts()
        return f'{head},"sequence":{"null" if sequence is None else sequence}{tail}'


class OutboundLog:
    """Appends events that are not part of a customer commit (intake's refusals) to the outbound stream, with the
    customer's next sequence number when we hold the customer (an event of it was stored); otherwise with
    ``sequence: null``. Commits append theirs in the commit script."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._keys = keys
        self._append = client.register_script(_APPEND)

    def append(self, event: OutboundEvent, *, ref: str | None) -> str:
        """Append ``event`` (about customer ``ref``, or none). Returns the stream entry id. Raises
        ``redis.RedisError``."""
        head, tail = event.parts()
        k = self._keys
        customer = [k.outbound_seq(ref), k.events(ref)] if ref else [k.outbound, k.outbound]
        entry = self._append(keys=[k.outbound, *customer], args=[ref or "", event.id, event.type, head, tail])
        return entry.decode() if isinstance(entry, bytes) else str(entry)
