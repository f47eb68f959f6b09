"""Sub-account API keys: issue, list, modify, delete, validation, and secrets that appear exactly once."""

from __future__ import annotations

import json

import httpx
import pytest

from sandbox import Exchange
from tests.sandbox.conftest import ClientFactory, key_request, new_key, new_sub
from tests.sandbox.kc import ApiKey, fails, ok

KEYS = "/api/v1/broker/nd/account/apikey"


def test_add_key_returns_secret_capitalised_permissions_and_full_ips(mgmt: httpx.Client) -> None:
    """Add SubAccount API answers the documented fields with the secret, apiVersion 3 and full IPs."""
    uid = new_sub(mgmt)
    data = new_key(mgmt, uid)
    assert set(data) == {"uid", "label", "apiKey", "secretKey", "apiVersion", "permissions", "ipWhitelist", "createdAt"}
    assert data["uid"] == uid and data["label"] == "customer-1" and data["apiVersion"] == 3
    assert data["permissions"] == ["General", "Spot"]
    assert data["ipWhitelist"] == ["127.0.0.1", "203.0.113.154"]
    assert len(data["apiKey"]) == 24 and int(data["apiKey"], 16) >= 0
    assert len(data["secretKey"]) == 36 and data["secretKey"].count("-") == 4


def test_get_keys_masks_ips_and_omits_the_secret(mgmt: httpx.Client) -> None:
    """Get SubAccount API is a plain array with masked IPs ("127.**.1") and no secretKey; apiKey filters."""
    uid = new_sub(mgmt)
    first, second = new_key(mgmt, uid), new_key(mgmt, uid, label="second")
    listed = ok(mgmt.get(KEYS, params={"uid": uid}))
    assert [k["apiKey"] for k in listed] == [first["apiKey"], second["apiKey"]]
    assert listed[0]["ipWhitelist"] == ["127.**.1", "203.**.154"]
    assert all("secretKey" not in k for k in listed)
    only = ok(mgmt.get(KEYS, params={"uid": uid, "apiKey": second["apiKey"]}))
    assert [k["label"] for k in only] == ["second"]


def test_modify_replaces_whitelist_permissions_and_label(mgmt: httpx.Client) -> None:
    """Modify SubAccount API fully replaces ipWhitelist, permissions and label and answers masked IPs."""
    uid = new_sub(mgmt)
    key = new_key(mgmt, uid)
    body = {
        "uid": uid,
        "apiKey": key["apiKey"],
        "ipWhitelist": ["10.1.2.3"],
        "permissions": ["spot"],
        "label": "renamed",
    }
    data = ok(mgmt.post("/api/v1/broker/nd/account/update-apikey", json=body))
    assert data["ipWhitelist"] == ["10.**.3"] and data["permissions"] == ["Spot"] and data["label"] == "renamed"
    assert "secretKey" not in data
    listed = ok(mgmt.get(KEYS, params={"uid": uid}))[0]
    assert (listed["permissions"], listed["label"]) == (["Spot"], "renamed")


def test_delete_key_revokes_it(mgmt: httpx.Client, make_client: ClientFactory) -> None:
    """Delete SubAccount API (query params) answers true; the key disappears and then fails with 400003."""
    uid = new_sub(mgmt)
    key = new_key(mgmt, uid)
    sub_client = make_client(ApiKey(key["apiKey"], key["secretKey"], "Aa12345678"))
    ok(sub_client.get("/api/v1/accounts"))
    assert ok(mgmt.delete(KEYS, params={"uid": uid, "apiKey": key["apiKey"]})) is True
    assert ok(mgmt.get(KEYS, params={"uid": uid})) == []
    fails(sub_client.get("/api/v1/accounts"), "400003", 401, msg="KC-API-KEY does not exist.")
    fails(mgmt.delete(KEYS, params={"uid": uid, "apiKey": key["apiKey"]}), "400100", msg="apiKey does not exist")


@pytest.mark.parametrize(
    ("overrides", "msg"),
    [
        ({"label": "abc"}, "label length must be 4-32"),
        ({"label": "x" * 33}, "label length must be 4-32"),
        ({"ipWhitelist": [f"10.0.0.{i}" for i in range(21)]}, "ipWhitelist must have at most 20 entries"),
        ({"ipWhitelist": ["300.1.1.1"]}, "ipWhitelist contains an invalid IP address: 300.1.1.1"),
        ({"permissions": ["withdrawal"]}, "permissions: withdrawal is not allowed (only general, spot, futures)"),
        ({"permissions": ["General"]}, "permissions: General is not allowed (only general, spot, futures)"),
        ({"permissions": []}, "permissions must not be empty"),
        ({"passphrase": "short"}, "passphrase length must be 7-32 and contain no spaces"),
        ({"passphrase": "has space 1"}, "passphrase length must be 7-32 and contain no spaces"),
        ({"uid": "999999999"}, "uid is not a sub-account of this broker"),
    ],
)
def test_add_key_validation(mgmt: httpx.Client, overrides: dict[str, object], msg: str) -> None:
    """Each documented (or analog) constraint fails with 400100 and a message naming the field."""
    body = {**key_request(new_sub(mgmt)), **overrides}
    fails(mgmt.post(KEYS, json=body), "400100", msg=msg)


def test_ipv6_whitelist_is_accepted_and_masked(mgmt: httpx.Client) -> None:
    """IPv6 addresses are valid whitelist entries and are masked to first and last group."""
    uid = new_sub(mgmt)
    new_key(mgmt, uid, ipWhitelist=["2001:db8::1"])
    assert ok(mgmt.get(KEYS, params={"uid": uid}))[0]["ipWhitelist"] == ["2001:**:1"]


def test_secret_appears_only_in_the_add_response(mgmt: httpx.Client, exchange: Exchange) -> None:
    """The secret and passphrase never show in listings, modify responses or GET /sandbox/v1/state."""
    uid = new_sub(mgmt)
    key = new_key(mgmt, uid, passphrase="Unique-Pass-77")
    body = {"uid": uid, "apiKey": key["apiKey"], "ipWhitelist": [], "permissions": ["general"], "label": "lbl1"}
    texts = [
        mgmt.get(KEYS, params={"uid": uid}).text,
        mgmt.post("/api/v1/broker/nd/account/update-apikey", json=body).text,
        mgmt.get("/sandbox/v1/state").text,
        json.dumps(exchange.state_snapshot()),
    ]
    for text in texts:
        assert key["apiKey"] in text
        assert key["secretKey"] not in text and "Unique-Pass-77" not in text


def test_sub_account_key_reads_its_own_accounts(
    mgmt: httpx.Client, make_client: ClientFactory, exchange: Exchange
) -> None:
    """A key issued by Add SubAccount API authenticates GET /api/v1/accounts with its secret and passphrase."""
    uid = new_sub(mgmt)
    key = new_key(mgmt, uid)
    exchange.credit(uid, "USDT", "TRADE", "12.5")
    client = make_client(ApiKey(key["apiKey"], key["secretKey"], "Aa12345678"))
    rows = ok(client.get("/api/v1/accounts"))
    assert [(r["currency"], r["type"], r["balance"], r["available"], r["holds"]) for r in rows] == [
        ("USDT", "trade", "12.5", "12.5", "0")
    ]
    wrong = make_client(ApiKey(key["apiKey"], "not-the-secret", "Aa12345678"))
    fails(wrong.get("/api/v1/accounts"), "400004", 401)
