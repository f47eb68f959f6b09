"""KuCoin's error envelope and the catalogue of codes the simulator answers with.

Every failure is an ``ApiError`` carrying KuCoin's string ``code``, a ``msg`` and an HTTP status. ``status=None``
marks a *business or validation* failure, whose HTTP status is the switch ``business_error_status`` (KuCoin
documents HTTP 200 with a non-200000 code; docs/kucoin-api.md §3.1). Codes and messages of the gateway errors
are KuCoin's (docs/kucoin-api.md §3.3); the HTTP statuses of auth errors are the observed ones
(docs/kucoin-api.md §7 item 7).
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "access_denied",
    "bad_key_version",
    "business",
    "internal_error",
    "invalid_ip",
    "invalid_partner_sign",
    "invalid_passphrase",
    "invalid_sign",
    "invalid_timestamp",
    "key_not_found",
    "missing_headers",
    "not_found",
    "too_many_requests",
    "unknown_partner",
    "unsupported_media_type",
    "v1_key",
]

SUCCESS = "200000"
"""KuCoin's success code (a string, like every code)."""


class ApiError(Exception):
    """One KuCoin error response: ``{"code": code, "msg": msg}`` with HTTP ``status``.

    ``status`` None means "business error": the exchange answers with ``business_error_status``.
    """

    def __init__(self, code: str, msg: str, status: int | None = None) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def business(msg: str, code: str = "400100") -> ApiError:
    """A validation or business-rule failure; KuCoin's generic code 400100 with a specific message."""
    return ApiError(code, msg, None)


def missing_headers() -> ApiError:
    """400001 (HTTP 400): one of KC-API-KEY/SIGN/TIMESTAMP/PASSPHRASE is missing (message as observed 2025)."""
    return ApiError(
        "400001",
        "Please check the header of your request for KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE",
        400,
    )


def invalid_timestamp() -> ApiError:
    return ApiError("400002", "Invalid KC-API-TIMESTAMP.", 400)


def key_not_found() -> ApiError:
    return ApiError("400003", "KC-API-KEY does not exist.", 401)


def invalid_passphrase() -> ApiError:
    return ApiError("400004", "Invalid KC-API-PASSPHRASE.", 401)


def invalid_sign() -> ApiError:
    return ApiError("400005", "Invalid KC-API-SIGN.", 401)


def invalid_ip(client_ip: str) -> ApiError:
    return ApiError("400006", f"Invalid request IP, the current client IP is: {client_ip}.", 403)


def access_denied() -> ApiError:
    return ApiError("400007", "Access denied, requires more permission.", 403)


def v1_key() -> ApiError:
    return ApiError("400008", "V1 & V2 API keys are no longer supported by this API. Please create a V3 API key.", 400)


def bad_key_version() -> ApiError:
    return ApiError("400009", "Invalid KC-API-KEY-VERSION.", 400)


def unknown_partner() -> ApiError:
    return ApiError("400200", "Unknown partner.", 400)


def invalid_partner_sign() -> ApiError:
    return ApiError("400201", "Invalid KC-API-PARTNER-SIGN.", 400)


def not_found() -> ApiError:
    return ApiError("404000", "Url Not Found", 404)


def unsupported_media_type() -> ApiError:
    return ApiError("415000", "Unsupported Media Type", 415)


def too_many_requests() -> ApiError:
    return ApiError("429000", "Too Many Requests", 429)


def internal_error(status: int = 500) -> ApiError:
    """500 → KuCoin's 500000; 503 (maintenance) → "503000", a code we invented (none is documented)."""
    if status == 503:
        return ApiError("503000", "Service Unavailable", 503)
    return ApiError("500000", "Internal Server Error", 500)
