"""The simulator's own verification of KuCoin request signatures (independent of the worker's signing code).

docs/kucoin-api.md §2: ``KC-API-SIGN = base64(HMAC_SHA256(secret, timestamp + METHOD + path[?query] + body))``
where the query is the *URL-decoded* string in the order the client sent it; ``KC-API-PASSPHRASE`` is
``base64(HMAC_SHA256(secret, passphrase))`` for key versions 2 and 3; ``KC-API-PARTNER-SIGN =
base64(HMAC_SHA256(brokerKey, timestamp + partner + apiKey))``. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import unquote_plus

__all__ = [
    "hmac_b64",
    "partner_sign",
    "passphrase_header",
    "prehash",
    "request_sign",
    "signatures_equal",
]


def hmac_b64(key: str, message: str) -> str:
    """``base64(HMAC_SHA256(key, message))`` over UTF-8 bytes."""
    return base64.b64encode(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()).decode()


def prehash(timestamp: str, method: str, path: str, raw_query: str, body: bytes) -> str:
    """The string KuCoin signs: timestamp + METHOD + path, ``?`` + the URL-decoded query when there is one,
    and the body exactly as received (empty for GET/DELETE)."""
    query = unquote_plus(raw_query) if raw_query else ""
    target = f"{path}?{query}" if query else path
    return f"{timestamp}{method.upper()}{target}{body.decode('utf-8', errors='replace')}"


def request_sign(secret: str, *, timestamp: str, method: str, path: str, raw_query: str, body: bytes) -> str:
    """The expected ``KC-API-SIGN`` of a request."""
    return hmac_b64(secret, prehash(timestamp, method, path, raw_query, body))


def passphrase_header(secret: str, passphrase: str) -> str:
    """The expected ``KC-API-PASSPHRASE`` for key versions 2 and 3."""
    return hmac_b64(secret, passphrase)


def partner_sign(broker_key: str, timestamp: str, partner: str, api_key: str) -> str:
    """The expected ``KC-API-PARTNER-SIGN`` (keyed with the broker-key, as DOC-INSTR and SDK 1.3.2 do)."""
    return hmac_b64(broker_key, f"{timestamp}{partner}{api_key}")


def signatures_equal(expected: str, received: str | None) -> bool:
    """Constant-time comparison; a missing header never matches."""
    return received is not None and hmac.compare_digest(expected.encode(), received.encode())
