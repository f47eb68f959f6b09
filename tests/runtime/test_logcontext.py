"""The canonical log line of a message (``worker.runtime.logcontext``), asserted with structlog's own
``capture_logs``: pure, no broker, no Redis."""

from __future__ import annotations

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from structlog.contextvars import bind_contextvars, get_contextvars, merge_contextvars
from structlog.testing import capture_logs

from worker.exchange import RetryableError
from worker.runtime.logcontext import LogContextMiddleware

BROKER = StubBroker()


def message(*, retries: int = 0, failed: bool = False) -> MessageProxy:
    proxy = MessageProxy(
        dramatiq.Message(queue_name="events", actor_name="settle", args=(), kwargs={}, options={"retries": retries})
    )
    if failed:
        proxy.fail()
    return proxy


def test_a_processed_message_writes_one_line_with_its_context_and_outcome_ok() -> None:
    """One line per message: its id, actor, attempt (retries + 1), what it bound meanwhile, outcome and duration."""
    middleware, msg = LogContextMiddleware(), message(retries=2)
    with capture_logs(processors=[merge_contextvars]) as logs:
        middleware.before_process_message(BROKER, msg)
        bind_contextvars(customer_ref="c-1")  # what the actor adds while it works
        middleware.after_process_message(BROKER, msg, result=None)
    assert len(logs) == 1
    line = logs[0]
    assert line["event"] == "message processed" and line["log_level"] == "info"
    assert (line["message_id"], line["actor"], line["attempt"]) == (msg.message_id, "settle", 3)
    assert line["customer_ref"] == "c-1" and line["outcome"] == "ok"
    assert isinstance(line["duration_s"], float) and line["duration_s"] >= 0


def test_a_failed_message_names_its_failure_kind_and_whether_it_will_retry() -> None:
    """A failure is a warning with the classified outcome, the error's type and text, and ``will_retry``."""
    middleware = LogContextMiddleware()
    for failed, will_retry in ((False, True), (True, False)):
        msg = message(failed=failed)
        with capture_logs(processors=[merge_contextvars]) as logs:
            middleware.before_process_message(BROKER, msg)
            error = RetryableError("exchange busy", endpoint="/api/v1/x", http_status=503)
            middleware.after_process_message(BROKER, msg, exception=error)
        [line] = logs
        assert line["event"] == "message failed" and line["log_level"] == "warning"
        assert line["outcome"] == "retryable" and line["will_retry"] is will_retry
        assert line["error"].startswith("RetryableError: ") and "exchange busy" in line["error"]


def test_a_long_error_is_cut_to_500_characters() -> None:
    middleware, msg = LogContextMiddleware(), message()
    with capture_logs() as logs:
        middleware.before_process_message(BROKER, msg)
        middleware.after_process_message(BROKER, msg, exception=ValueError("x" * 2000))
    assert len(logs[0]["error"]) == 500 and logs[0]["outcome"] == "error"


def test_the_context_does_not_leak_into_the_next_message() -> None:
    """After the line (and after a skipped message) nothing of the message stays bound."""
    middleware, msg = LogContextMiddleware(), message()
    with capture_logs():
        middleware.before_process_message(BROKER, msg)
        middleware.after_process_message(BROKER, msg)
    assert get_contextvars() == {}
    middleware.before_process_message(BROKER, msg)
    middleware.after_skip_message(BROKER, msg)
    assert get_contextvars() == {}


def test_a_line_without_a_start_has_no_duration_and_still_is_written() -> None:
    """An ``after`` without its ``before`` (a middleware added mid-flight) writes the line with ``duration_s=None``."""
    with capture_logs() as logs:
        LogContextMiddleware().after_process_message(BROKER, message())
    assert logs == [{"event": "message processed", "log_level": "info", "outcome": "ok", "duration_s": None}]
