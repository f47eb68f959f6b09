"""A tiny, independent KuCoin request signer for the tests (plain hmac; shares no code with ``sandbox``).

``KcAuth`` is an ``httpx.Auth`` that adds KC-API-* headers (and the broker partner headers when a ``Partner``
is given) to each request, reading the timestamp from an injectable clock so tests can use a fake one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import httpx


@dataclass(frozen=True)
class ApiKey:
    key: str
    secret: str
    passphrase: str


@dataclass(frozen=True)
class Partner:
    partner: str
    broker_key: str
    broker_name: str


def b64_hmac(key: str, message: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()).decode()


def sign_headers(
    key: ApiKey,
    *,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    timestamp_ms: int,
    partner: Partner | None = None,
    verify: bool = True,
    version: str = "3",
) -> dict[str, str]:
    """Headers for one request; ``query`` is the URL-encoded query string (signed decoded, per the docs)."""
    ts = str(timestamp_ms)
    target = path + (f"?{unquote_plus(query)}" if query else "")
    headers = {
        "KC-API-KEY": key.key,
        "KC-API-SIGN": b64_hmac(key.secret, ts + method.upper() + target + body.decode()),
        "KC-API-TIMESTAMP": ts,
        "KC-API-PASSPHRASE": b64_hmac(key.secret, key.passphrase),
        "KC-API-KEY-VERSION": version,
    }
    if partner is not None:
        headers.update(
            {
                "KC-API-PARTNER": partner.partner,
                "KC-BROKER-NAME": partner.broker_name,
                "KC-API-PARTNER-SIGN": b64_hmac(partner.broker_key, ts + partner.partner + key.key),
            }
        )
        if verify:
            headers["KC-API-PARTNER-VERIFY"] = "true"
    return headers


class KcAuth(httpx.Auth):
    requires_request_body = True

    def __init__(
        self,
        key: ApiKey,
        *,
        partner: Partner | None = None,
        clock: Callable[[], float] = time.time,
        verify: bool = True,
        version: str = "3",
    ) -> None:
        self.key, self.partner, self.clock, self.verify, self.version = key, partner, clock, verify, version

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            sign_headers(
                self.key,
                method=request.method,
                path=request.url.path,
                query=request.url.query.decode(),
                body=request.content,
                timestamp_ms=int(self.clock() * 1000),
                partner=self.partner,
                verify=self.verify,
                version=self.version,
            )
        )
        yield request


def ok(response: httpx.Response) -> Any:
    """The ``data`` of a successful KuCoin response (asserts HTTP 200 and code "200000")."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == "200000", body
    return body["data"]


def fails(response: httpx.Response, code: str, status: int = 200, msg: str | None = None) -> dict[str, Any]:
    """Assert a KuCoin failure envelope with ``code`` and HTTP ``status`` (and ``msg`` when given)."""
    body = response.json()
    assert (response.status_code, body.get("code")) == (status, code), (response.status_code, body)
    assert isinstance(body["code"], str) and "data" not in body
    if msg is not None:
        assert body["msg"] == msg, body
    return dict(body)
