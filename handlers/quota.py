"""The exchange's quota window as the limiter knows it, and whether a request may go now. Pure.

KuCoin counts a pool's weight in windows of 30 s that start at the first request after the previous window
ended, and says where the window stands in every answer (``gw-ratelimit-limit``, ``-remaining``, ``-reset`` =
ms until it resets). The shared limiter (``worker.ratelimit``) applies these rules atomically in a Lua script on
Redis' clock; tests hold the script and these functions to the same answers.

What we know of the current window (``QuotaWindow``), all in ms on one clock:

- ``end`` is never earlier than the exchange's reset: before an answer it is our first admission + window +
  ``lag_ms`` (the request may arrive that late, and the window starts when it arrives); each answer gives
  ``now + reset`` (the answer left the exchange before ``now``), and the earliest of them is kept. Once ``now``
  passes ``end`` the exchange's window has certainly reset: the next request starts a fresh one.
- ``used`` is the weight the exchange counts, or may count, in the window: ours admitted since it started,
  raised to ``limit − remaining`` when an answer shows more (someone else uses the key), and to the limit on a
  429. Weight admitted in the last ``lag_ms`` before ``end`` may arrive after the reset: it is counted in the next
  window too (``tail``).
- Callers that do not fit are **booked**: each is given a later window (``held`` weight is kept for them when
  it starts), so a backlog drains in order with one wait per caller and window, not every waiter at every reset.
- ``reserve`` weight of every window is left to the urgent lane (revocations, offboarding), which also skips the
  queue; every request, urgent or not, fits within ``limit``.

Before the exchange ever answered (``seq == 0``) nothing is known of its window: the limiter's rate schedule
(GCRA) admits on its own, and the weight it admits is remembered (``pending``) until the first answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["QuotaRules", "QuotaWindow", "Verdict", "decide", "hear"]


@dataclass(frozen=True)
class QuotaRules:
    """A pool's rules: its quota per window (the exchange's ``gw-ratelimit-limit`` once heard), the window's
    length, the longest a request may take from admission to the exchange, and the urgent lane's share."""

    limit: int
    window_ms: int = 30_000
    lag_ms: int = 2_000
    reserve: int = 0

    @property
    def cap(self) -> int:
        """Weight per window for normal (not urgent) work."""
        return max(0, self.limit - self.reserve)


@dataclass(frozen=True)
class QuotaWindow:
    """What the limiter knows of the exchange's current window (see the module docstring)."""

    seq: int = 0
    """Windows known so far; 0: the exchange never answered (the rate schedule decides)."""
    start: int = 0
    """When our first request of the window was admitted (the window started no earlier than ``lag_ms`` before)."""
    end: int = 0
    """Not before the exchange's reset."""
    used: int = 0
    held: int = 0
    """Weight kept for callers booked into this window."""
    booked: int = 0
    """Weight booked into later windows."""
    tail: int = 0
    """Weight admitted within ``lag_ms`` of ``end``: it may be counted in the next window."""
    answered: bool = False
    """An answer about this window has set ``end``."""
    pending: int = 0
    """Weight admitted before the exchange first answered."""


@dataclass(frozen=True)
class Verdict:
    """``wait_ms`` 0: go. Otherwise wait; ``booked`` is the window the caller is booked into (its reservation
    holds it), ``None`` when it keeps no reservation."""

    wait_ms: int
    booked: int | None = None


def _rolled(w: QuotaWindow, rules: QuotaRules, now: int) -> QuotaWindow:
    """``w``, or the next window when the exchange's has certainly reset (its first request is the caller's)."""
    if now < w.end:
        return w
    held = min(w.booked, rules.cap)
    return QuotaWindow(
        seq=w.seq + 1,
        start=now,
        end=now + rules.window_ms + rules.lag_ms,
        used=w.tail,
        held=held,
        booked=w.booked - held,
        pending=w.pending,
    )


def _admit(w: QuotaWindow, rules: QuotaRules, now: int, weight: int, *, from_held: int = 0) -> QuotaWindow:
    tail = w.tail + weight if now >= w.end - rules.lag_ms else w.tail
    return replace(w, used=w.used + weight, held=w.held - from_held, tail=tail)


def decide(
    w: QuotaWindow,
    rules: QuotaRules,
    now: int,
    weight: int,
    *,
    urgent: bool = False,
    holds: int | None = None,
    can_book: bool = False,
) -> tuple[QuotaWindow, Verdict]:
    """May ``weight`` go now? ``holds`` is the window the caller was booked into earlier (its reservation);
    ``can_book``: the caller can keep a reservation (it has a key). Only for a known window (``seq >= 1``)."""
    w = _rolled(w, rules, now)
    if urgent:
        if w.used + weight <= rules.limit:
            return _admit(w, rules, now, weight), Verdict(0)
        return w, Verdict(w.end - now)
    if holds is not None:
        if holds > w.seq:  # booked into a later window: come back when it should have started
            return w, Verdict(w.end + (holds - w.seq - 1) * rules.window_ms - now, holds)
        if w.used + weight <= rules.limit:
            if w.held >= weight:
                return _admit(w, rules, now, weight, from_held=weight), Verdict(0)
            if w.used + w.held + weight <= rules.cap:
                return _admit(w, rules, now, weight), Verdict(0)
        # its window filled without it (the exchange said so, or others took the room): book it again below
    elif w.used + w.held + weight <= rules.cap:
        return _admit(w, rules, now, weight), Verdict(0)
    if not can_book:
        return w, Verdict(w.end - now)
    target = w.seq + 1 + (w.booked + weight - 1) // max(1, rules.cap)
    w = replace(w, booked=w.booked + weight)
    return w, Verdict(w.end + (target - w.seq - 1) * rules.window_ms - now, target)


def hear(w: QuotaWindow, rules: QuotaRules, now: int, *, remaining: int, reset_ms: int, refused: bool) -> QuotaWindow:
    """Learn from one answer (``rules.limit`` is the exchange's limit it carried): where the window ends, how much
    of it is used. An answer about an earlier window (sent before ours started) changes nothing."""
    end = now + max(0, reset_ms)
    seen = rules.limit if refused else rules.limit - remaining
    if w.seq == 0:
        return QuotaWindow(seq=1, start=end - rules.window_ms, end=end, used=seen + w.pending, answered=True)
    w = _rolled(w, rules, now)  # past ``end`` the window we knew is over: this answer is about a newer one
    if end < w.start + rules.window_ms - rules.lag_ms:
        return w
    return replace(
        w,
        end=end if not w.answered else min(w.end, end),
        used=max(w.used, seen),
        answered=True,
    )
