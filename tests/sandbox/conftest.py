"""Fixtures: a fake clock, an exchange serving in-process, and signed clients for each key family."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox import Exchange, SandboxConfig, SandboxCredentials
from tests.sandbox.kc import ApiKey, KcAuth, Partner, ok

BASE_URL = "http://sandbox.test"
PHOTO = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
"""A 1x1 PNG as a data URI (KYC photos)."""


class FakeClock:
    """Epoch seconds that move only when told to."""

    def __init__(self, start: float = 1_730_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def creds() -> SandboxCredentials:
    return SandboxCredentials.from_env({})


@pytest.fixture
def exchange(creds: SandboxCredentials, clock: FakeClock) -> Exchange:
    return Exchange(SandboxConfig(), creds, clock=clock)


def management_key(creds: SandboxCredentials) -> ApiKey:
    return ApiKey(creds.api_key, creds.api_secret, creds.api_passphrase)


def trading_key(creds: SandboxCredentials) -> ApiKey:
    return ApiKey(creds.trading_api_key, creds.trading_api_secret, creds.trading_api_passphrase)


def partner_of(creds: SandboxCredentials) -> Partner:
    return Partner(creds.partner, creds.broker_key, creds.broker_name)


ClientFactory = Callable[..., httpx.Client]


def client_for(
    exchange: Exchange,
    key: ApiKey | None,
    partner: Partner | None = None,
    *,
    clock: Callable[[], float],
    timeout: float = 5.0,
    **kw: Any,
) -> httpx.Client:
    """An in-process client of ``exchange`` signing with ``key`` (and partner headers when given)."""
    auth = KcAuth(key, partner=partner, clock=clock, **kw) if key is not None else None
    return httpx.Client(base_url=BASE_URL, transport=exchange.transport(), auth=auth, timeout=timeout)


@pytest.fixture
def make_client(exchange: Exchange, clock: FakeClock) -> Iterator[ClientFactory]:
    """Build in-process clients: ``make_client(key, partner=None, **KcAuth kwargs)``; closed after the test."""
    clients: list[httpx.Client] = []

    def factory(key: ApiKey | None, partner: Partner | None = None, **kw: Any) -> httpx.Client:
        client = client_for(exchange, key, partner, clock=clock, **kw)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def mgmt(make_client: ClientFactory, creds: SandboxCredentials) -> httpx.Client:
    """The broker's management key with partner headers (VERIFY true), as the SDK sends them."""
    return make_client(management_key(creds), partner_of(creds))


@pytest.fixture
def trading(make_client: ClientFactory, creds: SandboxCredentials) -> httpx.Client:
    return make_client(trading_key(creds))


def new_sub(client: httpx.Client, name: str = "Account15") -> str:
    return str(ok(client.post("/api/v1/broker/nd/account", json={"accountName": name}))["uid"])


def key_request(uid: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": uid,
        "passphrase": "Aa12345678",
        "ipWhitelist": ["127.0.0.1", "203.0.113.154"],
        "permissions": ["general", "spot"],
        "label": "customer-1",
    }
    body.update(overrides)
    return body


def new_key(client: httpx.Client, uid: str, **overrides: Any) -> dict[str, Any]:
    return dict(ok(client.post("/api/v1/broker/nd/account/apikey", json=key_request(uid, **overrides))))


def transfer_body(uid: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "currency": "USDT",
        "amount": "10",
        "direction": "OUT",
        "accountType": "MAIN",
        "specialUid": uid,
        "specialAccountType": "TRADE",
        "clientOid": "c-1",
    }
    body.update(overrides)
    return body


def kyc_body(uid: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "clientUid": uid,
        "firstName": "Ada",
        "lastName": "Lovelace",
        "issueCountry": "DE",
        "birthDate": "1990-01-31",
        "identityType": "idcard",
        "identityNumber": "X1234567",
        "expireDate": "2099-01-01",
        "frontPhoto": PHOTO,
        "backendPhoto": PHOTO,
        "facePhoto": PHOTO,
    }
    body.update(overrides)
    return body
