"""KuCoin request signing (docs/kucoin-api.md §2): pure functions, tested against the documented vectors.

- ``KC-API-SIGN`` = base64(HMAC-SHA256(apiSecret, timestamp + METHOD + requestPath[?query] + body)), where the
  query is the *un-encoded* ``k=v&k=v`` string in the order sent and body is the exact JSON sent ("" if none).
- ``KC-API-PASSPHRASE`` = base64(HMAC-SHA256(apiSecret, passphrase)) for key versions 2 and 3.
- ``KC-API-PARTNER-SIGN`` = base64(HMAC-SHA256(brokerKey, timestamp + partner + apiKey)) — keyed by the broker
  key, as the docs, the Java/PHP SDKs and PyPI 1.3.2 do (Go/Node/Python ≤1.3.0 wrongly use the API secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from worker.settings import KucoinCredentials

__all__ = ["KEY_VERSION", "hmac_b64", "partner_sign", "passphrase_sign", "prehash", "sign_headers"]

KEY_VERSION = "3"
"""``KC-API-KEY-VERSION`` sent with every request; all current SDKs send 3."""


def hmac_b64(key: str, message: str) -> str:
    """base64(HMAC-SHA256(key, message)) over UTF-8 bytes."""
    digest = hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def prehash(timestamp: str, method: str, path: str, query: Sequence[tuple[str, str]], body: str) -> str:
    """The string KuCoin signs: timestamp + METHOD + path, ``?`` + un-encoded query when present, + body."""
    raw_query = "&".join(f"{k}={v}" for k, v in query)
    target = f"{path}?{raw_query}" if raw_query else path
    return f"{timestamp}{method.upper()}{target}{body}"


def passphrase_sign(credentials: KucoinCredentials) -> str:
    """The HMAC'd passphrase header value for a v2/v3 key."""
    return hmac_b64(credentials.api_secret, credentials.api_passphrase)


def partner_sign(timestamp: str, partner: str, api_key: str, broker_key: str) -> str:
    """``KC-API-PARTNER-SIGN``: HMAC of timestamp + partner + apiKey keyed by the broker key."""
    return hmac_b64(broker_key, f"{timestamp}{partner}{api_key}")


def sign_headers(
    credentials: KucoinCredentials,
    *,
    timestamp_ms: int,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]] = (),
    body: str = "",
    broker: bool,
) -> dict[str, str]:
    """All authentication headers for one request. ``broker=True`` adds the partner headers (ND endpoints).

    Raises ``ValueError`` when broker headers are asked for credentials without partner data.
    """
    timestamp = str(timestamp_ms)
    headers = {
        "KC-API-KEY": credentials.api_key,
        "KC-API-SIGN": hmac_b64(credentials.api_secret, prehash(timestamp, method, path, query, body)),
        "KC-API-TIMESTAMP": timestamp,
        "KC-API-PASSPHRASE": passphrase_sign(credentials),
        "KC-API-KEY-VERSION": KEY_VERSION,
    }
    if broker:
        if not (credentials.partner and credentials.broker_key and credentials.broker_name):
            raise ValueError("broker endpoints need partner, broker key and broker name")
        headers.update(
            {
                "KC-API-PARTNER": credentials.partner,
                "KC-API-PARTNER-SIGN": partner_sign(
                    timestamp, credentials.partner, credentials.api_key, credentials.broker_key
                ),
                "KC-BROKER-NAME": credentials.broker_name,
                "KC-API-PARTNER-VERIFY": "true",
            }
        )
    return headers
