"""The one place where failure classes become dramatiq behaviour.

=============================  ====================================================================
failure                        what dramatiq does
=============================  ====================================================================
``InvalidEvent``               dead letter at once, with the reason (``throws``)
``UnauthenticatedEvent``       (an ``InvalidEvent``: no valid publisher proof) the same, kind ``unauthenticated``
``StepsBlocked`` (permanent)   dead letter at once, with the reasons (``throws``)
``AuthConfigError``            retry slowly (``auth_retry_delay_ms``) while the message has had fewer than
                               ``AUTH_RETRY_BUDGET`` attempts in all (dramatiq keeps one counter); a loud
                               metric meanwhile
``RetryableError``             retry with exponential backoff and jitter (``min/max_backoff``), honouring
                               the exchange's reset time when it gave one
Redis errors, lock contention  retry with backoff (a store or lock problem, not a verdict on the event); so is
                               ``ReplayFoundCustomerBusy`` (an operator's replay must run its retry itself)
anything else (a bug)          retry with backoff, then dead letter with the final traceback

An anticipated failure (auth/config, retryable, a Redis connection or time-out error) reaches dramatiq as a
``Retry`` whose ``__cause__`` is the failure: dramatiq then logs no ERROR traceback of its own, and our one line
per message (``message failed ... will_retry``) says what happened. A bug is raised as it is, so dramatiq logs it
at ERROR with its traceback. Either way the dead letter keeps the final traceback.
rate limit / outcome unknown   never reach dramatiq: the reconciler re-schedules the customer itself
=============================  ====================================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import dramatiq
import redis

from worker.exchange import AuthConfigError, RetryableError
from worker.provisioning.reconciler import StepsBlocked
from worker.runtime.errors import InvalidEvent, ReplayFoundCustomerBusy, UnauthenticatedEvent

__all__ = ["AUTH_RETRY_BUDGET", "RetryPolicy", "failure_kind"]

AUTH_RETRY_BUDGET = 48
"""Slow retries for auth/config failures (48 × 5 min = 4 h by default) before the message is dead-lettered."""

DEAD_AT_ONCE = (InvalidEvent, StepsBlocked)


def failure_kind(exc: BaseException) -> str:
    """A short label of a failure for metrics, logs and dead-letter metadata."""
    cause = exc.__cause__ if isinstance(exc, dramatiq.Retry) and exc.__cause__ is not None else exc
    if isinstance(cause, UnauthenticatedEvent):
        return "unauthenticated"
    if isinstance(cause, InvalidEvent):
        return "invalid_event"
    if isinstance(cause, StepsBlocked):
        return "blocked"
    if isinstance(cause, AuthConfigError):
        return "auth_config"
    if isinstance(cause, RetryableError | ReplayFoundCustomerBusy):
        return "retryable"
    return "error"


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    min_backoff_ms: int
    max_backoff_ms: int
    auth_retry_delay_ms: int

    def translate(self, exc: Exception) -> BaseException:
        """The exception the actor should raise to dramatiq for ``exc`` (``Retry`` carries a chosen delay)."""
        if isinstance(exc, AuthConfigError):
            delay = int(self.auth_retry_delay_ms * random.uniform(0.9, 1.1))
            retry = dramatiq.Retry(str(exc), delay=delay)
            retry.__cause__ = exc
            return retry
        if isinstance(exc, RetryableError) and exc.retry_after_ms:
            retry = dramatiq.Retry(str(exc), delay=max(exc.retry_after_ms, self.min_backoff_ms))
            retry.__cause__ = exc
            return retry
        if isinstance(exc, RetryableError | ReplayFoundCustomerBusy | redis.ConnectionError | redis.TimeoutError):
            retry = dramatiq.Retry(str(exc))  # no delay: dramatiq's exponential backoff
            retry.__cause__ = exc
            return retry
        return exc

    def retry_when(self, retries: int, exc: BaseException) -> bool:
        """dramatiq's ``retry_when``: whether attempt ``retries + 1`` may be retried after ``exc``."""
        kind = failure_kind(exc)
        if kind in ("invalid_event", "unauthenticated", "blocked"):
            return False
        if kind == "auth_config":
            return retries < AUTH_RETRY_BUDGET
        return retries < self.max_retries
