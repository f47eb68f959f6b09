"""Every response maps to exactly one error class, decided in one place (worker.exchange.http.classify)."""

import pytest

from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.errors import (
    AccountLimitError,
    AuthConfigError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from worker.exchange.http import RateLimitInfo, classify

WRITE = ENDPOINTS["add_api_key"]
READ = ENDPOINTS["get_api_keys"]
NO_RATE = RateLimitInfo(None, None, None)


def test_success_is_no_error() -> None:
    """HTTP 200 with code 200000 is success."""
    assert classify(WRITE, 200, {"code": "200000", "data": None}, NO_RATE) is None


def test_rate_limit_carries_the_reset_time() -> None:
    """429/429000 is retryable after the gw-ratelimit-reset the exchange sent."""
    error = classify(WRITE, 429, {"code": "429000", "msg": "Too Many Requests"}, RateLimitInfo(2000, 0, 12345))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after_ms == 12345
    assert (error.endpoint, error.http_status, error.code) == ("add_api_key", 429, "429000")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_on_a_write_is_outcome_unknown(status: int) -> None:
    """A 5xx after a write was sent may have been applied: the caller must look before repeating."""
    assert isinstance(classify(WRITE, status, None, NO_RATE), OutcomeUnknownError)


def test_server_error_on_a_read_is_retryable() -> None:
    """Reads change nothing, so a 5xx is plainly retryable."""
    error = classify(READ, 500, {"code": "500000", "msg": "Internal Server Error"}, NO_RATE)
    assert type(error) is RetryableError


def test_unreadable_200_on_a_write_is_outcome_unknown() -> None:
    """A 200 whose body is not JSON may hide a committed write."""
    assert isinstance(classify(WRITE, 200, None, NO_RATE), OutcomeUnknownError)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "400001"),
        (400, "400002"),
        (401, "400003"),
        (401, "400004"),
        (401, "400005"),
        (403, "400006"),
        (403, "400007"),
        (400, "400009"),
        (400, "400010"),
        (400, "400200"),
        (400, "400201"),
        (404, "404000"),
        (415, "415000"),
    ],
)
def test_auth_and_configuration_codes_are_auth_config(status: int, code: str) -> None:
    """Credentials, clock, IP, partner and host problems page a human instead of burning retries."""
    assert isinstance(classify(WRITE, status, {"code": code, "msg": "x"}, NO_RATE), AuthConfigError)


@pytest.mark.parametrize("status", [200, 400])
def test_business_codes_are_permanent_whatever_the_http_status(status: int) -> None:
    """KuCoin reports business failures with HTTP 200 and a non-200000 code, or with 400."""
    error = classify(WRITE, status, {"code": "400100", "msg": "label length must be 4-32"}, NO_RATE)
    assert type(error) is PermanentError
    assert error.message == "label length must be 4-32"


def test_rate_limit_headers_are_read_from_any_response() -> None:
    """gw-ratelimit-* parse from headers; a missing or malformed one reads as None."""
    info = RateLimitInfo.from_headers({"gw-ratelimit-limit": "2000", "gw-ratelimit-remaining": "x"})
    assert info == RateLimitInfo(2000, None, None)


@pytest.mark.parametrize(
    "message", ["sub-account count exceeds the limit", "The number of sub-accounts has reached the upper limit"]
)
def test_the_sub_account_limit_is_its_own_class(message: str) -> None:
    """Add SubAccount refused for the broker's sub-account cap is AccountLimitError, not a name refusal."""
    error = classify(ENDPOINTS["add_sub_account"], 200, {"code": "400100", "msg": message}, NO_RATE)
    assert isinstance(error, AccountLimitError) and isinstance(error, PermanentError)
    assert error.kind == "account_limit"


def test_a_taken_name_is_not_the_limit() -> None:
    """A taken name ("accountName already exists") stays a plain permanent refusal: another name is tried."""
    taken = {"code": "400100", "msg": "accountName already exists"}
    error = classify(ENDPOINTS["add_sub_account"], 200, taken, NO_RATE)
    assert type(error) is PermanentError
