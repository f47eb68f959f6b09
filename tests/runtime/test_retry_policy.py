"""How failure classes become dramatiq behaviour: an anticipated failure is a ``Retry`` (dramatiq logs no
traceback for it), a bug is raised as it is (dramatiq logs it at ERROR with its traceback)."""

from __future__ import annotations

import dramatiq
import redis

from worker.exchange import RetryableError
from worker.runtime.retry_policy import RetryPolicy, failure_kind

POLICY = RetryPolicy(max_retries=3, min_backoff_ms=100, max_backoff_ms=400, auth_retry_delay_ms=1000)


def test_a_retryable_exchange_error_is_retried_quietly_with_backoff() -> None:
    exc = RetryableError("ReadTimeout: the exchange did not answer in 10 s", endpoint="get_api_keys")
    translated = POLICY.translate(exc)
    assert isinstance(translated, dramatiq.Retry) and translated.delay is None  # dramatiq's backoff applies
    assert translated.__cause__ is exc and failure_kind(translated) == "retryable"
    assert POLICY.retry_when(0, translated) and not POLICY.retry_when(3, translated)


def test_a_redis_outage_is_retried_quietly_and_a_bug_is_raised_as_it_is() -> None:
    outage = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    assert isinstance(POLICY.translate(outage), dramatiq.Retry)
    bug = KeyError("sub_account")
    assert POLICY.translate(bug) is bug
