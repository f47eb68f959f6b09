"""Webhook delivery decisions, pure: what an attempt's answer means, when to try again, when to give up.

No I/O, no clock, no randomness: the dispatcher (``worker.webhooks``) passes the time and a random draw in.

=========================================  ==================================================================
answer                                     decision
=========================================  ==================================================================
2xx                                        delivered
any other status (3xx are not followed)    retry after the backoff, or after ``Retry-After`` if it is longer
no answer (connect error, time-out, ...)   retry after the backoff (the request may have arrived: at-least-once)
a failure ``horizon`` after the first try  give up: a delivery dead letter (``provisioner webhooks retry``)
=========================================  ==================================================================

Backoff: attempt *n* waits ``min(max, min · 2^(n-1))``, drawn in its upper half ("equal jitter"), so retries
spread out yet keep growing. No retry is scheduled past the horizon: the last one happens at the horizon, and
when it fails too the delivery is given up — so a delivery is tried for at least the whole horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "DELIVERY_UNTRACKED",
    "Answer",
    "Delivered",
    "GiveUp",
    "RetryAt",
    "RetryPolicy",
    "Tries",
    "backoff_ms",
    "decide",
    "is_delivered",
    "retry_after_ms",
]

DELIVERY_UNTRACKED = -1
"""When a key's credentials reached the upstream, where the deployment delivers no webhooks (``worker.webhooks``'
``key_delivered_at``): nothing to wait for, a rotation goes on as planned."""


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP ``status`` (``None`` when no response came) and, for a failure, a short
    ``error`` and the ``Retry-After`` the receiver asked for (ms from now, already parsed)."""

    status: int | None
    error: str = ""
    retry_after_ms: int | None = None


@dataclass(frozen=True)
class Tries:
    """The attempts of one delivery so far."""

    attempts: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    last_status: int | None = None
    last_error: str = ""

    def after(self, answer: Answer, now_ms: int) -> Tries:
        """These tries plus the attempt that got ``answer`` at ``now_ms``."""
        return replace(
            self,
            attempts=self.attempts + 1,
            first_ms=self.first_ms if self.first_ms is not None else now_ms,
            last_ms=now_ms,
            last_status=answer.status,
            last_error=answer.error,
        )


@dataclass(frozen=True)
class RetryPolicy:
    min_backoff_ms: int = 5_000
    max_backoff_ms: int = 3_600_000
    horizon_ms: int = 3 * 86_400_000
    """How long after its first attempt a delivery is still tried."""

    def __post_init__(self) -> None:
        if not 0 < self.min_backoff_ms <= self.max_backoff_ms or self.horizon_ms <= 0:
            raise ValueError("need 0 < min_backoff_ms <= max_backoff_ms and horizon_ms > 0")


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class RetryAt:
    at_ms: int


@dataclass(frozen=True)
class GiveUp:
    reason: str


Decision = Delivered | RetryAt | GiveUp


def is_delivered(status: int | None) -> bool:
    """Only a 2xx answer is a delivery (a redirect is not followed: the URL is configured exactly)."""
    return status is not None and 200 <= status < 300


def retry_after_ms(value: str | None, now_ms: int) -> int | None:
    """``Retry-After`` (RFC 9110: delay-seconds, or an HTTP-date) as ms from ``now_ms``; ``None`` when absent or
    malformed (then the backoff alone decides). A date in the past is 0."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text) * 1000
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, int(moment.timestamp() * 1000) - now_ms)


def backoff_ms(attempt: int, policy: RetryPolicy, draw: float) -> int:
    """The wait after failed attempt ``attempt`` (1 for the first): exponential, capped, drawn with ``draw`` in
    [0, 1) within its upper half."""
    ceiling = policy.min_backoff_ms * 2 ** min(max(attempt - 1, 0), 40)
    ceiling = min(policy.max_backoff_ms, ceiling)
    return int(ceiling / 2 + draw * ceiling / 2)


def decide(tries: Tries, answer: Answer, now_ms: int, policy: RetryPolicy, draw: float) -> Decision:
    """What to do after an attempt that got ``answer`` at ``now_ms``; ``tries`` includes that attempt."""
    if is_delivered(answer.status):
        return Delivered()
    first = tries.first_ms if tries.first_ms is not None else now_ms
    deadline = first + policy.horizon_ms
    if now_ms >= deadline:
        hours = policy.horizon_ms / 3_600_000
        return GiveUp(f"not delivered after {tries.attempts} attempts over {hours:g} h: {answer.error or 'failed'}")
    wait = backoff_ms(tries.attempts, policy, draw)
    if answer.retry_after_ms is not None:
        wait = max(wait, answer.retry_after_ms)
    return RetryAt(min(now_ms + wait, deadline))


def http_date(ms: int) -> str:
    """An HTTP-date (for tests and receivers that answer ``Retry-After`` with a date)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
