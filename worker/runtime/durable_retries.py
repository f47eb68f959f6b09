"""dramatiq's ``Retries`` without its one loss: a retry that cannot be stored holds back the original's ack.

dramatiq enqueues a failed message's retry copy, then acks the original. When the enqueue fails because Redis
is away, ``Retries`` raises inside an "after" hook, dramatiq logs it and acks the original once Redis is back:
the message is gone (measured in the chaos run). Here the failed retry is remembered, and ``before_ack`` stores
it first; while that fails it raises an error dramatiq treats as a broker connection error, so dramatiq keeps
retrying the whole ack step (every few seconds, its own loop) and the original stays unacked. If the process
dies meanwhile, the unacked original is redelivered. The hand-off and the stale scan remain the safety net;
this makes the common case (a short outage) recover at once instead of after the stale scan's period.

If the failed enqueue had in fact been stored (its reply lost, a time-out), the retry is stored twice: two
deliveries of one message, which our actors take as duplicates (events are stored once, reconciles hold the
customer's lock). Accepted rather than made idempotent with a script of our own around dramatiq's enqueue.
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.common import compute_backoff
from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware import MiddlewareError, Retries
from dramatiq.middleware.retries import DEFAULT_MAX_BACKOFF

__all__ = ["DurableRetries", "RetryNotStoredError"]

_log = structlog.get_logger(__name__)


class RetryNotStoredError(MiddlewareError, BrokerConnectionError):
    """The retry copy of a message could not be enqueued yet: do not ack the original (dramatiq retries)."""


class DurableRetries(Retries):
    """``Retries`` whose retry copy is stored before the original is acked. Same arguments as ``Retries``."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._unstored: dict[str, tuple[Any, int | None]] = {}
        self._guard = threading.Lock()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        try:
            super().after_process_message(broker, message, result=result, exception=exception)  # type: ignore[no-untyped-call]
        except redis.RedisError:
            with self._guard:
                self._unstored[_delivery(message)] = (message, self._delay(broker, message, exception))
            _log.warning("retry not stored yet: the message stays unacked until it is", message_id=message.message_id)

    def _delay(self, broker: dramatiq.Broker, message: Any, exception: BaseException | None) -> int:
        """The delay ``Retries`` chose for this retry (its own computation, with jitter, so that retries held back
        by an outage do not all fire at once when Redis returns)."""
        if isinstance(exception, dramatiq.Retry) and exception.delay is not None:
            return int(exception.delay)
        options = broker.get_actor(message.actor_name).options
        min_backoff = message.options.get("min_backoff", options.get("min_backoff", self.min_backoff))
        max_backoff = message.options.get("max_backoff", options.get("max_backoff", self.max_backoff))
        retries = int(message.options.get("retries", 1)) - 1  # Retries has already counted this attempt
        _, delay = compute_backoff(retries, factor=min_backoff, max_backoff=min(max_backoff, DEFAULT_MAX_BACKOFF))
        return int(delay)

    def before_ack(self, broker: dramatiq.Broker, message: Any) -> None:
        with self._guard:
            pending = self._unstored.get(_delivery(message))
        if pending is None:
            return
        retry, delay = pending
        try:
            broker.enqueue(retry, delay=delay)
        except redis.RedisError as exc:
            raise RetryNotStoredError(f"retry of {message.message_id} not stored: {exc}") from exc  # type: ignore[no-untyped-call]
        with self._guard:
            self._unstored.pop(_delivery(message), None)
        _log.info("retry stored after Redis came back", message_id=message.message_id)


def _delivery(message: Any) -> str:
    """This delivery of the message (its retries share the message id, not the Redis one)."""
    return str(message.options.get("redis_message_id") or message.message_id)
