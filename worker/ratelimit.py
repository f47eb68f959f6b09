"""The shared, weighted rate limiter in front of KuCoin's per-pool quota: one Lua script on Redis' clock.

KuCoin counts the weight of every request of a key against its pool's quota per 30 s window; every worker
process on every host shares that quota, so the limiter lives in Redis. Design:

- **GCRA** (generic cell rate algorithm) per pool, at ``quota × (1 − headroom)`` per window, with a burst
  tolerance of ``headroom × quota`` that a request's whole weight must fit in: any span of the exchange's window
  length then carries at most ``quota`` weight, so the exchange never has to say 429, while a pool with no
  backlog still sends at once.
- **Reservations.** A caller that must wait is given its own slot in the schedule (keyed by customer) and is
  admitted when it comes back at that time. A backlog of N customers is thus spread over the future with one
  wait each — not N callers re-trying at every window reset (O(N²) work for a drain).
- **Feedback from the exchange.** A 429, or a ``gw-ratelimit-remaining`` below the low-water mark, blocks the
  pool until ``gw-ratelimit-reset`` for everyone, and shifts every reservation and the schedule by the block's
  length (someone else used the key, or clocks drifted). ``gw-ratelimit-limit`` replaces the configured quota.
- **Who asks, in which lane**: each call's ``CallScope`` (``worker.exchange.scope``) names the customer whose
  reservation it is (``rate_key``), whether it is urgent, and a weight already taken ahead (``preadmission``).
- **Urgent lane.** Revocations and offboarding are not queued behind sign-ups: an urgent caller is admitted as
  soon as the pool's *urgent* schedule allows (bounded by the full rate) and pushes the normal schedule (and
  its reservations) back by exactly its own cost, so the total still never exceeds the quota.

All times come from Redis ``TIME``, never from the hosts' clocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from worker.exchange.endpoints import Endpoint
from worker.exchange.errors import RateLimitedError
from worker.exchange.http import RateLimitInfo
from worker.exchange.scope import NO_SCOPE, CallScope, Preadmission
from worker.store.keys import Keys
from worker.store.riders import ADMIT, Rider

__all__ = [
    "ACQUIRE_FUNCTION",
    "PoolQuota",
    "PoolState",
    "SharedRateLimiter",
    "WaitingGate",
    "pool_key",
    "pool_states",
    "window_lag_ms",
]


_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_WINDOW_FIELDS = "'wseq', 'wstart', 'wend', 'wused', 'wheld', 'wbooked', 'wtail', 'wans', 'wpend', 'wlim'"

_WINDOW_STATE = (
    """
local wf = redis.call('HMGET', KEYS[1], """
    + _WINDOW_FIELDS
    + """)
local seq, wstart, wend, used = tonumber(wf[1] or '0'), tonumber(wf[2] or '0'), tonumber(wf[3] or '0'),
  tonumber(wf[4] or '0')
local held, booked, tail, ans = tonumber(wf[5] or '0'), tonumber(wf[6] or '0'), tonumber(wf[7] or '0'),
  tonumber(wf[8] or '0')
local pend = tonumber(wf[9] or '0')
local limit = tonumber(wf[10] or cfg_limit)
local cap = math.max(0, limit - math.floor(limit * share))
local function roll()  -- handlers.quota._rolled
  if now < wend then return end
  local h = math.min(booked, cap)
  seq, wstart, wend, used, held, booked, tail, ans = seq + 1, now, now + window + lag, tail, h, booked - h, 0, 0
end
local function save()
  redis.call('HSET', KEYS[1], 'wseq', seq, 'wstart', wstart, 'wend', wend, 'wused', used, 'wheld', held,
    'wbooked', booked, 'wtail', tail, 'wans', ans, 'wpend', pend, 'wlim', limit, 'wwin', window)
  redis.call('PEXPIRE', KEYS[1], 3600000)
end
"""
)
"""The window state of ``handlers.quota.QuotaWindow`` in the pool's hash, and its roll-over. Expects the locals
``cfg_limit``, ``window``, ``lag`` and ``share`` (the learnt limit ``wlim`` wins over the configured one)."""

_WINDOW_ACQUIRE = (
    _WINDOW_STATE
    + """
-- handlers.quota.decide, on the window the exchange's answers describe
if now < blocked then return {math.ceil(blocked - now), 0} end
roll()
local function admit(from_held)
  if now >= wend - lag then tail = tail + weight end
  used, held = used + weight, held - from_held
  save()
  return {0, 0}
end
if ARGV[4] == '1' then
  if used + weight <= limit then return admit(0) end
  save()
  return {math.ceil(wend - now), 0}
end
local holds = nil
if KEYS[2] ~= '' then
  local kept = redis.call('GET', KEYS[2])
  if kept then
    holds = tonumber(string.match(kept, '^w:(%d+)$') or seq)  -- a slot of the rate schedule: due now
    redis.call('DEL', KEYS[2])
  end
end
if holds ~= nil and holds > seq then
  local wait = math.ceil(wend + (holds - seq - 1) * window - now)
  redis.call('SET', KEYS[2], 'w:' .. holds, 'PX', wait + tonumber(ARGV[5]))
  save()
  return {wait, 1}
end
if holds ~= nil then
  if used + weight <= limit then
    if held >= weight then return admit(weight) end
    if used + held + weight <= cap then return admit(0) end
  end
elseif used + held + weight <= cap then
  return admit(0)
end
if KEYS[2] == '' then
  save()
  return {math.ceil(wend - now), 0}
end
local target = seq + 1 + math.floor((booked + weight - 1) / math.max(1, cap))
booked = booked + weight
local wait = math.ceil(wend + (target - seq - 1) * window - now)
redis.call('SET', KEYS[2], 'w:' .. target, 'PX', wait + tonumber(ARGV[5]))
save()
return {wait, 0}
"""
)

_HEAR = (
    _NOW
    + """
-- KEYS[1] pool state; ARGV: remaining, reset ms, refused (0/1), configured limit, window ms, lag ms, urgent
-- share, the answer's limit ('' = none), pinned now ('' = Redis TIME; tests only). handlers.quota.hear
if ARGV[9] ~= '' then now = tonumber(ARGV[9]) end
local cfg_limit, window, lag, share = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
"""
    + _WINDOW_STATE
    + """
if ARGV[8] ~= '' then
  limit = tonumber(ARGV[8])
  cap = math.max(0, limit - math.floor(limit * share))
end
local e = now + math.max(0, tonumber(ARGV[2]))
local seen = limit - tonumber(ARGV[1])
if ARGV[3] == '1' then seen = limit end
if seq == 0 then
  seq, wstart, wend, used, held, booked, tail, ans, pend = 1, e - window, e, seen + pend, 0, 0, 0, 1, 0
  save()
  return 1
end
roll()
if e < wstart + window - lag then
  save()
  return 0
end
if ans == 1 then wend = math.min(wend, e) else wend = e end
used, ans = math.max(used, seen), 1
save()
return 1
"""
)


ACQUIRE_FUNCTION = (
    "local function rl_acquire(KEYS, ARGV)\n"
    + _NOW
    + """
-- KEYS[1] pool state hash; KEYS[2] reservation key of the caller (absent: none; an empty key name is refused by
-- a Redis ACL that lists key patterns)
KEYS = {KEYS[1], KEYS[2] or ''}
-- Replies are integers (Redis truncates Lua numbers): every wait is rounded *up*, or 0.4 ms would read "go".
-- ARGV: weight, ms per weight unit, tolerance ms, urgent (0/1), reservation ttl ms,
--       configured limit, window ms, lag ms, urgent share, pinned now ('' = Redis TIME; tests only)
if ARGV[10] ~= '' then now = tonumber(ARGV[10]) end
local weight, per, tau = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local st = redis.call('HMGET', KEYS[1], 'tat', 'blocked', 'shift', 'utat', 'wseq')
local tat, blocked, shift, utat = tonumber(st[1] or '0'), tonumber(st[2] or '0'), tonumber(st[3] or '0'),
  tonumber(st[4] or '0')
if tonumber(st[5] or '0') > 0 then
  local cfg_limit, window, lag, share = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
"""
    + "\n".join("  " + line if line else line for line in _WINDOW_ACQUIRE.strip("\n").split("\n"))
    + """
end
local cost = weight * per
if ARGV[4] == '1' then
  -- urgent: its own schedule at the full rate; admitted once the pool is not blocked
  local base = math.max(utat, now)
  local send = math.max(base + cost - tau, now, blocked)
  if send > now then return {math.ceil(send - now), 0} end
  redis.call('HSET', KEYS[1], 'utat', base + cost, 'tat', math.max(tat, now) + cost, 'shift', shift + cost)
  redis.call('HINCRBY', KEYS[1], 'wpend', weight)
  redis.call('PEXPIRE', KEYS[1], 3600000)
  return {0, 0}
end
if KEYS[2] ~= '' then
  local held = redis.call('GET', KEYS[2])
  if held and string.sub(held, 1, 2) == 'w:' then  -- booked into a window the pool no longer remembers
    redis.call('DEL', KEYS[2])
    held = nil
  end
  if held then
    local slot, at_shift = string.match(held, '^(%-?%d+%.?%d*):(%-?%d+%.?%d*)$')
    local due = tonumber(slot) + (shift - tonumber(at_shift))
    redis.call('PEXPIRE', KEYS[1], 3600000)
    if now >= due and now >= blocked then
      redis.call('DEL', KEYS[2])
      redis.call('HINCRBY', KEYS[1], 'wpend', weight)
      return {0, 1}
    end
    local wait = math.ceil(math.max(due, blocked) - now)
    redis.call('PEXPIRE', KEYS[2], wait + tonumber(ARGV[5]))  -- a shifted slot keeps its place
    return {wait, 1}
  end
end
local base = math.max(tat, now, blocked)
local send = math.max(base + cost - tau, now)
if blocked > now then send = math.max(send, blocked) end
if send > now and KEYS[2] == '' then return {math.ceil(send - now), 0} end  -- nobody to hold a slot for: no reservation
redis.call('HSET', KEYS[1], 'tat', base + cost)
redis.call('PEXPIRE', KEYS[1], 3600000)
if send <= now then
  redis.call('HINCRBY', KEYS[1], 'wpend', weight)
  return {0, 0}
end
redis.call('SET', KEYS[2], string.format('%d:%d', send, shift), 'PX', math.floor(send - now + tonumber(ARGV[5])))
return {math.ceil(send - now), 0}
end
"""
)
"""Lua: the function ``rl_acquire(KEYS, ARGV)`` answering ``{wait ms, held a reservation}`` (0: go), for the
``_ACQUIRE`` script and for a commit's rider (``SharedRateLimiter.admit_rider``, ``worker.store.riders``)."""

_ACQUIRE = ACQUIRE_FUNCTION + "return rl_acquire(KEYS, ARGV)\n"

_BLOCK = (
    _NOW
    + """
-- KEYS[1] pool state; ARGV[1] block for this many ms from now
local until_ms = now + tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'tat', 'blocked', 'shift')
local tat, blocked, shift = tonumber(st[1] or '0'), tonumber(st[2] or '0'), tonumber(st[3] or '0')
if until_ms <= blocked then return 0 end
local delta = until_ms - math.max(blocked, now)
redis.call('HSET', KEYS[1], 'blocked', until_ms, 'shift', shift + delta, 'tat', math.max(tat, now) + delta)
redis.call('PEXPIRE', KEYS[1], 3600000)
return delta
"""
)


def pool_key(keys: Keys, pool: str) -> str:
    """The Redis hash holding ``pool``'s schedule (``tat``, ``utat``, ``blocked``, ``shift``; ms on Redis' clock)."""
    return f"{keys.prefix}:rl:{pool}"


@dataclass(frozen=True)
class PoolState:
    """What a pool's schedule says now: how far ahead of now it runs (the wait a new caller would be given, the
    backlog already admitted or reserved) and for how long the exchange told everyone to stop."""

    pool: str
    scheduled_ahead_ms: int
    blocked_for_ms: int


def pool_states(client: redis.Redis, keys: Keys, pools: list[str]) -> list[PoolState]:
    """Read each pool's schedule against Redis ``TIME`` (the clock the limiter uses): how far ahead its rate
    schedule runs or, once the exchange's window is known, until the start of the last window customers are
    booked into; a pool never used, or idle for an hour (its hash expired), reads as 0 and 0. Raises
    ``redis.RedisError`` when Redis does not answer."""
    seconds, micros = client.time()
    now = int(seconds) * 1000 + int(micros) // 1000
    states = []
    for pool in pools:
        tat, blocked, wend, booked, wlim, wwin = client.hmget(
            pool_key(keys, pool), ["tat", "blocked", "wend", "wbooked", "wlim", "wwin"]
        )
        ahead = max(0, int(float(tat or 0)) - now)
        if booked and float(booked) > 0 and wend and wlim:
            # customers booked into later windows: the last of them is due at the start of the window it fills
            windows = -(-int(float(booked)) // max(1, int(float(wlim))))
            ahead = max(ahead, int(float(wend)) - now + (windows - 1) * int(float(wwin or 30_000)))
        states.append(
            PoolState(pool=pool, scheduled_ahead_ms=ahead, blocked_for_ms=max(0, int(float(blocked or 0)) - now))
        )
    return states


@dataclass(frozen=True)
class PoolQuota:
    """A pool's quota (weight per window) as configured; learnt values from the exchange override it."""

    quota: int
    window_ms: int = 30_000


@dataclass
class SharedRateLimiter:
    """The ``RateGate`` of the exchange client (``acquire`` before each request, ``observe`` after).

    Until the exchange first answers, the rate schedule (GCRA) admits; from then on its window, as its headers
    describe it (``handlers.quota``), decides: each window is filled up to the exchange's limit, less
    ``urgent_share`` of it kept for the urgent lane."""

    client: redis.Redis
    keys: Keys
    pools: dict[str, PoolQuota]
    headroom: float = 0.03
    """Share of the quota the rate schedule (before the exchange's first answer) keeps free."""
    urgent_share: float = 0.01
    """Share of each exchange window kept for the urgent lane (revocations, offboarding)."""
    reservation_ttl_ms: int = 120_000
    now_ms: Callable[[], int] | None = None
    """Pins the scripts' clock (tests); ``None``: Redis ``TIME``, the clock every process shares."""
    _learnt: dict[str, int] = field(default_factory=dict)
    _heard_end: dict[str, int] = field(default_factory=dict)
    """Per pool, the end of the exchange's window this process last told Redis of (its own clock, ms)."""

    def __post_init__(self) -> None:
        self._acquire = self.client.register_script(_ACQUIRE)
        self._block = self.client.register_script(_BLOCK)
        self._hear = self.client.register_script(_HEAR)

    def _key(self, pool: str) -> str:
        return pool_key(self.keys, pool)

    def _spec(self, pool: str) -> PoolQuota:
        return self.pools.get(pool) or PoolQuota(2000)

    def _rate(self, pool: str) -> tuple[float, float]:
        """(ms per weight unit, burst tolerance ms) for ``pool``."""
        spec = self._spec(pool)
        quota = self._learnt.get(pool, spec.quota)
        usable = quota * (1 - self.headroom)
        per = spec.window_ms / usable
        return per, self.headroom * quota * per

    def _window_args(self, pool: str) -> list[str | int]:
        """Configured limit, window, lag (``window_lag_ms``), urgent share, pinned clock."""
        spec = self._spec(pool)
        pinned = "" if self.now_ms is None else str(self.now_ms())
        return [spec.quota, spec.window_ms, window_lag_ms(spec.window_ms), repr(self.urgent_share), pinned]

    def wait_ms(self, endpoint: Endpoint, scope: CallScope = NO_SCOPE) -> int:
        """Ask for ``endpoint``'s weight now: 0 means go; otherwise the milliseconds to wait (a slot is reserved
        for the caller named by ``scope.rate_key``, if any; ``scope.urgent`` takes the urgent lane)."""
        asked = self.admit_rider(endpoint, scope)
        wait, _ = self._acquire(keys=asked.keys, args=asked.args)
        return int(wait)

    def admit_rider(self, endpoint: Endpoint, scope: CallScope) -> Rider:
        """``wait_ms``'s question as a commit's rider (``worker.store.riders``): asked in the commit that records
        the write's intent, which then refuses with the wait (no round trip of its own). Pure."""
        per, tau = self._rate(endpoint.pool)
        who = scope.rate_key
        reservation = [f"{self._key(endpoint.pool)}:res:{who}"] if who else []
        return Rider(
            ADMIT,
            keys=[self._key(endpoint.pool), *reservation],
            args=[
                endpoint.weight,
                repr(per),
                repr(tau),
                "1" if scope.urgent else "0",
                self.reservation_ttl_ms,
                *self._window_args(endpoint.pool),
            ],
        )

    def refusal(self, endpoint: Endpoint, wait_ms: int) -> RateLimitedError:
        """What ``acquire`` raises when told to wait ``wait_ms`` for ``endpoint``."""
        return RateLimitedError(
            f"{endpoint.pool} pool: wait {wait_ms} ms for quota", endpoint=endpoint.name, retry_after_ms=wait_ms
        )

    def preadmit(self, endpoint: Endpoint, scope: CallScope) -> Preadmission:
        """Take the weight for the next ``endpoint`` request of ``scope``'s work *now* (before recording a write's
        intent, so that a wait costs no intent): a call whose scope carries the returned ``Preadmission`` then
        passes ``acquire`` once without counting again. Raises ``RateLimitedError`` like ``acquire``."""
        self.acquire(endpoint, scope)
        return Preadmission(endpoint.name)

    def acquire(self, endpoint: Endpoint, scope: CallScope = NO_SCOPE) -> None:
        """Raise ``RateLimitedError`` with the exact wait if ``endpoint`` may not be called now for ``scope``."""
        if scope.preadmission is not None and scope.preadmission.take(endpoint.name):
            return
        wait = self.wait_ms(endpoint, scope)
        if wait > 0:
            raise self.refusal(endpoint, wait)

    def observe(self, endpoint: Endpoint, info: RateLimitInfo, http_status: int) -> None:
        """Learn from the exchange's headers: its quota, where its window ends and how much of it is used
        (``handlers.quota.hear``), for every process; a 429 also blocks the pool until the reset."""
        if info.limit is not None and info.limit > 0:
            self._learnt[endpoint.pool] = info.limit
        if http_status == 429:
            self.block(endpoint.pool, info.reset_ms if info.reset_ms is not None else 1_000)
        if info.remaining is not None and info.reset_ms is not None:
            if http_status != 429 and self._nothing_new(endpoint.pool, info.remaining, info.reset_ms):
                return
            limit, window, lag, share, pinned = self._window_args(endpoint.pool)
            self._hear(
                keys=[self._key(endpoint.pool)],
                args=[
                    info.remaining,
                    info.reset_ms,
                    "1" if http_status == 429 else "0",
                    limit,
                    window,
                    lag,
                    share,
                    info.limit if info.limit is not None and info.limit > 0 else "",
                    pinned,
                ],
            )

    def _nothing_new(self, pool: str, remaining: int, reset_ms: int) -> bool:
        """Whether an answer can be left unheard (a Redis round trip saved on most answers): it is about the window
        this process already told Redis of, and more than half of the exchange's limit is left in it. Near the
        limit every answer is heard; the first answer of each window always is."""
        now = self.now_ms() if self.now_ms is not None else time.monotonic_ns() // 1_000_000
        end = now + max(0, reset_ms)
        spec = self._spec(pool)
        last = self._heard_end.get(pool)
        if last is not None and abs(end - last) <= window_lag_ms(spec.window_ms):
            limit = self._learnt.get(pool, spec.quota)
            if remaining * 2 > limit:
                return True
        self._heard_end[pool] = end
        return False

    def block(self, pool: str, for_ms: int) -> int:
        """Block ``pool`` for ``for_ms`` from now (Redis' clock); returns by how much the schedule moved."""
        return int(self._block(keys=[self._key(pool)], args=[max(0, int(for_ms))]))


def window_lag_ms(window_ms: int) -> int:
    """The longest we allow from admitting a request to its arrival at the exchange: 2 s, or a tenth of a short
    window (``handlers.quota.QuotaRules.lag_ms``)."""
    return min(2_000, window_ms // 10)


class WaitingGate:
    """The shared limiter for one-off commands (the CLI's reads, ``recover``, the probe): where a worker is told to
    come back later (it re-schedules its customer), a command waits for the quota instead, up to ``max_wait_s``;
    then it raises the limiter's ``RateLimitedError``."""

    def __init__(
        self,
        inner: SharedRateLimiter,
        *,
        max_wait_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self._clock = clock

    def acquire(self, endpoint: Endpoint, scope: CallScope = NO_SCOPE) -> None:
        deadline = self._clock() + self._max_wait_s
        while True:
            try:
                self._inner.acquire(endpoint, scope)
                return
            except RateLimitedError as exc:
                wait_s = (exc.retry_after_ms or 1_000) / 1000
                if self._clock() + wait_s > deadline:
                    raise
                self._sleep(wait_s)

    def observe(self, endpoint: Endpoint, info: RateLimitInfo, http_status: int) -> None:
        self._inner.observe(endpoint, info, http_status)
