"""The KuCoin ND-broker client: typed endpoint families over one signed, pooled HTTP core."""

from worker.exchange.client import ExchangeClient
from worker.exchange.errors import (
    AccountLimitError,
    AuthConfigError,
    DuplicateClientOidError,
    ExchangeError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    RequestValidationError,
    RetryableError,
)

__all__ = [
    "AccountLimitError",
    "AuthConfigError",
    "DuplicateClientOidError",
    "ExchangeClient",
    "ExchangeError",
    "OutcomeUnknownError",
    "PermanentError",
    "RateLimitedError",
    "RequestValidationError",
    "RetryableError",
]
