"""One canonical log line per message: message id, actor, event id, customer reference, outcome, duration."""

from __future__ import annotations

import time
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from worker.runtime.retry_policy import failure_kind

__all__ = ["LogContextMiddleware"]

_log = structlog.get_logger("worker.message")


class LogContextMiddleware(Middleware):
    """Binds the message's context for every log line it causes, then writes its canonical line. Never raises."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id, actor=message.actor_name, attempt=message.options.get("retries", 0) + 1
        )
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        try:
            started = self._started.pop(message.message_id, None)
            duration = round(time.perf_counter() - started, 4) if started is not None else None
            if exception is None:
                _log.info("message processed", outcome="ok", duration_s=duration)
            else:
                _log.warning(
                    "message failed",
                    outcome=failure_kind(exception),
                    duration_s=duration,
                    error=f"{type(exception).__name__}: {exception}"[:500],
                    will_retry=not message.failed,
                )
        finally:
            structlog.contextvars.clear_contextvars()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._started.pop(message.message_id, None)
        structlog.contextvars.clear_contextvars()
