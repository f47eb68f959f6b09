"""The exchange client's error hierarchy: one root, four classes that tell the caller what to do next.

=====================  ======================================================================================
class                  meaning, and what the caller does
=====================  ======================================================================================
``RetryableError``     nothing happened on the exchange (or it was a read): try again later, after
                       ``retry_after_ms`` when the exchange said how long (``RateLimitedError``).
``PermanentError``     the exchange refused the request for a reason that will not change by retrying
                       (validation, business rule). ``RequestValidationError`` is the same, found before
                       sending. ``DuplicateClientOidError`` is the transfer endpoint refusing a clientOid it
                       already holds a transfer for: proof that a transfer under it exists.
                       ``AccountLimitError`` is Add SubAccount refused for the broker's sub-account cap: no
                       other name can succeed either; an operator has KuCoin raise the cap.
``AuthConfigError``    our credentials, clock, IP whitelist or host are wrong (400001–400010, 4002xx, 404,
                       415): alert an operator; retrying slowly is fine, burning the retry budget is not.
``OutcomeUnknownError`` a write whose response was lost (time-out, dropped connection, 5xx, unparseable 200):
                       the exchange may or may not have applied it. Look before repeating.
=====================  ======================================================================================

Every error carries the endpoint name, HTTP status, KuCoin code and message. None carries a secret: messages
come from the exchange or from this package, never from request headers.
"""

from __future__ import annotations

__all__ = [
    "AccountLimitError",
    "AuthConfigError",
    "DuplicateClientOidError",
    "ExchangeError",
    "OutcomeUnknownError",
    "PermanentError",
    "RateLimitedError",
    "RequestValidationError",
    "RetryableError",
]


class ExchangeError(Exception):
    """Root of every error the exchange client raises."""

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        http_status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.http_status = http_status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        parts = [f"{self.endpoint}: {self.message}"]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        return " ".join(parts)

    def __reduce__(self) -> tuple[object, ...]:  # keep keyword-only args across pickling (dramatiq, tests)
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[ExchangeError], message: str, state: dict[str, object]) -> ExchangeError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class RetryableError(ExchangeError):
    """Nothing changed on the exchange, or the call was a read: safe to repeat later."""

    kind = "retryable"

    def __init__(self, message: str, *, retry_after_ms: int | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after_ms = retry_after_ms


class RateLimitedError(RetryableError):
    """The pool's quota is spent (429000, or our own limiter said wait); ``retry_after_ms`` is when it resets."""

    kind = "rate_limited"


class PermanentError(ExchangeError):
    """The exchange (or our validation) refused the request; repeating it unchanged cannot succeed."""

    kind = "permanent"


class DuplicateClientOidError(PermanentError):
    """The exchange refused a transfer because it already holds one under this clientOid: a transfer under it
    exists (its parameters were ours: every clientOid is derived from one funding line or sweep)."""

    kind = "duplicate_client_oid"


class AccountLimitError(PermanentError):
    """Add SubAccount refused because the broker holds as many sub-accounts as KuCoin allows it (Get Broker Info's
    ``accountSize`` against its cap): not a name clash, so no other name can succeed until the cap is raised."""

    kind = "account_limit"


class RequestValidationError(PermanentError):
    """A request broke a documented constraint and was not sent. ``field`` names the offending argument."""

    kind = "invalid_request"

    def __init__(self, message: str, *, field: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.field = field


class AuthConfigError(ExchangeError):
    """Credentials, signature, clock, IP whitelist, partner or host are wrong: page a human, retry slowly."""

    kind = "auth_config"


class OutcomeUnknownError(ExchangeError):
    """A write may or may not have been applied (response lost, time-out, 5xx): read before repeating it."""

    kind = "outcome_unknown"
