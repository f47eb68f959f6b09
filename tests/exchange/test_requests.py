"""Requests that break a documented constraint are refused before sending, naming the field."""

from decimal import Decimal

import pytest

from worker.exchange.errors import RequestValidationError
from worker.exchange.models import AccountType, Direction
from worker.exchange.requests import AddApiKeyRequest, TransferRequest, build, format_amount

GOOD_KEY = {
    "uid": "226383154",
    "passphrase": "Aa12345678",
    "ip_whitelist": ["203.0.113.10"],
    "permissions": ["general", "spot"],
    "label": "gen-0001",
}


def test_valid_key_request_renders_kucoins_field_names() -> None:
    """A valid Add SubAccount API request becomes KuCoin's camelCase JSON body."""
    body = build(AddApiKeyRequest, "add_api_key", **GOOD_KEY).body()
    assert body == {
        "uid": "226383154",
        "passphrase": "Aa12345678",
        "ipWhitelist": ["203.0.113.10"],
        "permissions": ["general", "spot"],
        "label": "gen-0001",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"label": "abc"}, "label"),
        ({"label": "x" * 33}, "label"),
        ({"ip_whitelist": [f"10.0.0.{i}" for i in range(21)]}, "ip_whitelist"),
        ({"ip_whitelist": ["10.0.0.256"]}, "ip_whitelist"),
        ({"ip_whitelist": ["10.0.0.0/24"]}, "ip_whitelist"),
        ({"permissions": ["withdrawal"]}, "permissions"),
        ({"permissions": []}, "permissions"),
        ({"permissions": ["spot", "spot"]}, "permissions"),
        ({"passphrase": "short"}, "passphrase"),
        ({"passphrase": "has space 123"}, "passphrase"),
        ({"uid": "abc"}, "uid"),
    ],
)
def test_invalid_key_requests_name_the_field(change: dict[str, object], field: str) -> None:
    """Label 4-32, ≤ 20 valid IPs, general/spot/futures only, passphrase 7-32: each violation names its field."""
    with pytest.raises(RequestValidationError) as info:
        build(AddApiKeyRequest, "add_api_key", **{**GOOD_KEY, **change})
    assert info.value.field == field
    assert info.value.endpoint == "add_api_key"


def _transfer(**change: object) -> dict[str, object]:
    base: dict[str, object] = {
        "currency": "USDT",
        "amount": Decimal("250"),
        "direction": Direction.OUT,
        "account_type": AccountType.MAIN,
        "special_uid": "226383154",
        "special_account_type": AccountType.TRADE,
        "client_oid": "f-abc",
    }
    return {**base, **change}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": Decimal(0)}, "amount"),
        ({"amount": Decimal("-1")}, "amount"),
        ({"amount": Decimal("NaN")}, "amount"),
        ({"client_oid": "x" * 129}, "client_oid"),
        ({"currency": "usdt!"}, "currency"),
        ({"direction": "SIDEWAYS"}, "direction"),
    ],
)
def test_invalid_transfers_are_refused(change: dict[str, object], field: str) -> None:
    """Amounts must be positive and finite, clientOid ≤ 128, currency and direction well-formed."""
    with pytest.raises(RequestValidationError) as info:
        build(TransferRequest, "transfer", **_transfer(**change))
    assert info.value.field == field


def test_transfer_body_sends_amount_as_a_plain_string() -> None:
    """Amounts travel as decimal strings without exponent or trailing zeros."""
    body = build(TransferRequest, "transfer", **_transfer(amount=Decimal("250.000"))).body()
    assert body["amount"] == "250"
    assert body["clientOid"] == "f-abc"
    assert format_amount(Decimal("1E+3")) == "1000"
    assert format_amount(Decimal("0.00000001")) == "0.00000001"
