"""The daily funding ledger: the Special Account's per-day cap, shared by every worker, reserved atomically.

Amounts are kept as integer units of 10⁻⁸ (the contract allows at most 8 decimals), so Redis adds integers and
never floats. A reservation is keyed by the funding line, so repeating it (retries, replays) is idempotent;
it is released only when the transfer is known not to have happened.

After a loss of our state the day's use is seeded from the Special Account's ledger plus the reservations it does
not list (``seed``). The ledger lists a transfer only after its lag: a transfer in flight at the loss shows only
later. Until the day's caps were seeded from a ledger read made once every transfer sent before the loss is listed
(``reseed_due``), no funding line is decided against the cap; ``mark_reseeded`` records such a read.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_FLOOR, Decimal

import redis

from worker.store.keys import Keys
from worker.store.riders import RESERVE, Rider

__all__ = ["RESERVE_FUNCTION", "FundingLedger", "to_units"]

SCALE = Decimal(10) ** 8
_RETENTION_S = 40 * 86400

_GREATER = """
local function greater(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then return nb end
  if na then a, b = string.sub(b, 2), string.sub(a, 2) end
  if #a ~= #b then return #a > #b end
  return a > b
end
"""
"""Lua: whether integer text ``a`` is greater than ``b``. Amounts stay text and Redis adds them (``HINCRBY``, 64-bit):
a Lua number is a double, exact only up to 2^53 units (90 million of a coin at 10⁻⁸; a cheap token's cap passes
it)."""

RESERVE_FUNCTION = (
    _GREATER
    + """
local function ledger_reserve(KEYS, ARGV)
  local reservation = 'r:' .. ARGV[1]
  if redis.call('HEXISTS', KEYS[1], reservation) == 1 then return 1 end
  local field = 'used:' .. ARGV[2]
  redis.call('HINCRBY', KEYS[1], field, ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  if ARGV[4] ~= '' and greater(redis.call('HGET', KEYS[1], field), ARGV[4]) then
    redis.call('HINCRBY', KEYS[1], field, '-' .. ARGV[3])
    return 0
  end
  redis.call('HSET', KEYS[1], reservation, ARGV[2] .. ':' .. ARGV[3])
  return 1
end
"""
)
"""Lua: the function ``ledger_reserve(KEYS, ARGV)`` answering 1 (reserved, or already) or 0 (over the cap), for
the ``_RESERVE`` script and for a commit's reservation rider (``worker.store.riders``)."""

_RESERVE = RESERVE_FUNCTION + "return ledger_reserve(KEYS, ARGV)\n"
_RELEASE = """
local reservation = 'r:' .. ARGV[1]
local held = redis.call('HGET', KEYS[1], reservation)
if not held then return 0 end
local sep = string.find(held, ':')
redis.call('HINCRBY', KEYS[1], 'used:' .. string.sub(held, 1, sep - 1), '-' .. string.sub(held, sep + 1))
redis.call('HDEL', KEYS[1], reservation)
return 1
"""
_SEED = (
    _GREATER
    + """
local listed = {}
for i = 4, #ARGV do listed['r:' .. ARGV[i]] = true end
local prefix = ARGV[1] .. ':'
local sum = 'seed:' .. ARGV[1]
local fields = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], sum, ARGV[2])
for i = 1, #fields, 2 do
  local name, held = fields[i], fields[i + 1]
  if string.sub(name, 1, 2) == 'r:' and not listed[name] and string.sub(held, 1, #prefix) == prefix then
    redis.call('HINCRBY', KEYS[1], sum, string.sub(held, #prefix + 1))
  end
end
local floor = redis.call('HGET', KEYS[1], sum)
redis.call('HDEL', KEYS[1], sum)
local field = 'used:' .. ARGV[1]
local used = redis.call('HGET', KEYS[1], field) or '0'
if greater(floor, used) then
  redis.call('HSET', KEYS[1], field, floor)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return floor
end
return used
"""
)
_MARK_RESEEDED = """
local due = redis.call('GET', KEYS[1])
if not due or tonumber(ARGV[1]) < tonumber(due) then return 0 end
local seeded = redis.call('GET', KEYS[2])
if not seeded or tonumber(seeded) < tonumber(ARGV[1]) then redis.call('SET', KEYS[2], ARGV[1]) end
return 1
"""


def to_units(amount: Decimal) -> int:
    """``amount`` in 10⁻⁸ units, rounded down (caps round down, so they never allow more than configured)."""
    return int((amount * SCALE).to_integral_value(rounding=ROUND_FLOOR))


class FundingLedger:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._seed = client.register_script(_SEED)
        self._mark_reseeded = client.register_script(_MARK_RESEEDED)

    def reserve(self, *, day: str, line: str, currency: str, amount: Decimal, cap: Decimal | None) -> bool:
        """Reserve ``amount`` of ``day``'s cap for funding line ``line``; False if the cap would be exceeded.
        ``cap=None`` records money that already moved: counted whatever the cap says.

        Idempotent per ``line``: a second call for a line already reserved returns True and adds nothing.
        """
        asked = self.reservation(day=day, line=line, currency=currency, amount=amount, cap=cap)
        return bool(self._reserve(keys=asked.keys, args=asked.args))

    def reservation(self, *, day: str, line: str, currency: str, amount: Decimal, cap: Decimal | None) -> Rider:
        """``reserve`` as a commit's rider (``worker.store.riders``): the commit that records the transfer's intent
        reserves the line in the same script, or refuses (nothing of it written) when the cap would be exceeded.
        Pure."""
        units = to_units(amount)
        if Decimal(units) != amount * SCALE:
            raise ValueError("funding amounts carry at most 8 decimals")
        return Rider(
            RESERVE,
            keys=[self._keys.funding_day(day)],
            args=[line, currency, units, "" if cap is None else to_units(cap), _RETENTION_S],
        )

    def release(self, *, day: str, line: str) -> bool:
        """Give back a reservation whose transfer did not happen. Returns whether one was held."""
        return bool(self._release(keys=[self._keys.funding_day(day)], args=[line]))

    def seed(self, *, day: str, currency: str, amount: Decimal, listed: Iterable[str] = ()) -> Decimal:
        """After a loss of our state: the day's use is at least ``amount`` (what the exchange shows moved out of the
        Special Account that day) plus every reservation of ``currency`` the ledger does not list (``listed``: the
        lines whose transfer the ledger read surely shows). A reservation restored with older state may be of a
        line not sent yet, sent later on it, while the ledger lists payments that state never reserved: neither
        count alone bounds the day. Lines re-reserved afterwards add to it: the day may count some twice, never
        less than was paid. Atomic (workers may reserve meanwhile: the day keeps the larger of the two). Returns
        the day's use."""
        units = to_units(amount)
        used = self._seed(keys=[self._keys.funding_day(day)], args=[currency, units, _RETENTION_S, *listed])
        return Decimal(int(used)) / SCALE

    def reserved_lines(self, day: str) -> list[str]:
        """The funding lines (``ref:key``) holding a reservation on ``day``'s caps."""
        return [str(n)[2:] for n in self._redis.hkeys(self._keys.funding_day(day)) if str(n).startswith("r:")]

    def await_reseed(self, *, due_at_ms: int) -> None:
        """A recovery after a loss: the day's caps must be seeded again from a ledger read made at or after
        ``due_at_ms`` (when every transfer sent before the loss is listed) before a funding line is decided."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.recovery_caps_due_at, str(due_at_ms))
            pipe.delete(self._keys.recovery_caps_seeded_at)
            pipe.execute()

    def reseed_due(self) -> int | None:
        """From when (ms) the day's caps must be seeded again before a funding line is decided, or ``None`` when
        they need not be (no recovery after a loss, or seeded already from a ledger read made late enough)."""
        due, seeded = self._redis.mget([self._keys.recovery_caps_due_at, self._keys.recovery_caps_seeded_at])
        if due is None or (seeded is not None and int(seeded) >= int(due)):
            return None
        return int(due)

    def mark_reseeded(self, *, read_at_ms: int) -> bool:
        """The day's caps were seeded from a ledger read that started at ``read_at_ms``: it counts when made at or
        after the moment ``await_reseed`` set (an earlier read may miss a transfer in flight at the loss).
        Returns whether it counted."""
        keys = [self._keys.recovery_caps_due_at, self._keys.recovery_caps_seeded_at]
        return bool(self._mark_reseeded(keys=keys, args=[read_at_ms]))

    def used(self, *, day: str, currency: str) -> Decimal:
        raw = self._redis.hget(self._keys.funding_day(day), f"used:{currency}")
        return Decimal(int(raw or 0)) / SCALE
