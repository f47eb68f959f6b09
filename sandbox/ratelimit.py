"""KuCoin's resource-pool rate limiting (docs/kucoin-api.md §4).

Each (user uid, pool) has a quota per window of ``window_ms`` (30 s) that starts when the pool's first request of
the window arrives. Each request deducts its endpoint's weight; a request whose weight exceeds what is left is
refused (HTTP 429, code 429000) and deducts nothing. Every response to a known caller carries
``gw-ratelimit-limit``, ``gw-ratelimit-remaining`` and ``gw-ratelimit-reset`` (ms until the window resets).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RateLimiter", "RateStatus"]


@dataclass(frozen=True)
class RateStatus:
    """The pool's state after a request: ``allowed`` is False when the request was refused."""

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (
            ("gw-ratelimit-limit", str(self.limit)),
            ("gw-ratelimit-remaining", str(self.remaining)),
            ("gw-ratelimit-reset", str(self.reset_ms)),
        )


@dataclass
class _Window:
    started_ms: int
    used: int


class RateLimiter:
    """Fixed windows per (uid, pool). Not thread-safe by itself: the exchange calls it under its lock."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}

    def _current(self, key: tuple[str, str], now_ms: int, window_ms: int) -> _Window | None:
        window = self._windows.get(key)
        if window is not None and now_ms - window.started_ms >= window_ms:
            del self._windows[key]
            return None
        return window

    def consume(self, uid: str, pool: str, weight: int, *, quota: int, window_ms: int, now_ms: int) -> RateStatus:
        """Deduct ``weight`` from the pool, starting a window if none is running; refuse if it does not fit."""
        key = (uid, pool)
        window = self._current(key, now_ms, window_ms)
        if window is None:
            window = self._windows[key] = _Window(started_ms=now_ms, used=0)
        reset = max(0, window.started_ms + window_ms - now_ms)
        if window.used + weight > quota:
            return RateStatus(False, quota, max(0, quota - window.used), reset)
        window.used += weight
        return RateStatus(True, quota, quota - window.used, reset)

    def peek(self, uid: str, pool: str, *, quota: int, window_ms: int, now_ms: int) -> RateStatus:
        """The pool's state without deducting anything (reset 0 when no window is running)."""
        window = self._current((uid, pool), now_ms, window_ms)
        if window is None:
            return RateStatus(True, quota, quota, 0)
        reset = max(0, window.started_ms + window_ms - now_ms)
        return RateStatus(True, quota, max(0, quota - window.used), reset)
