"""Authentication failures, each with KuCoin's code and HTTP status, in KuCoin's order."""

from __future__ import annotations

import httpx
import pytest

from sandbox import Exchange, SandboxCredentials
from tests.sandbox.conftest import (
    BASE_URL,
    ClientFactory,
    FakeClock,
    management_key,
    new_key,
    new_sub,
    partner_of,
    trading_key,
)
from tests.sandbox.kc import ApiKey, Partner, fails, ok, sign_headers

ACCOUNTS = "/api/v1/broker/nd/account"


def raw_get(exchange: Exchange, path: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=BASE_URL, transport=exchange.transport()) as client:
        return client.get(path, headers=headers)


def signed(creds: SandboxCredentials, clock: FakeClock, *, path: str = ACCOUNTS, **kw: object) -> dict[str, str]:
    return sign_headers(
        management_key(creds), method="GET", path=path, timestamp_ms=int(clock.now * 1000),
        partner=partner_of(creds), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize("header", ["KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP", "KC-API-PASSPHRASE"])
def test_missing_header_is_400001(exchange: Exchange, creds: SandboxCredentials, clock: FakeClock, header: str) -> None:
    """Without any one of the four KC-API headers the answer is 400001 / HTTP 400, without rate-limit headers."""
    headers = signed(creds, clock)
    del headers[header]
    response = raw_get(exchange, ACCOUNTS, headers)
    fails(response, "400001", 400)
    assert "gw-ratelimit-limit" not in response.headers


def test_unknown_key_is_400003(make_client: ClientFactory) -> None:
    """An API key the exchange never issued answers 400003 / HTTP 401."""
    client = make_client(ApiKey("000000000000000000000000", "s", "p"))
    fails(client.get(ACCOUNTS), "400003", 401, msg="KC-API-KEY does not exist.")


@pytest.mark.parametrize(("version", "code"), [("1", "400008"), ("4", "400009"), ("x", "400009")])
def test_bad_key_version(make_client: ClientFactory, creds: SandboxCredentials, version: str, code: str) -> None:
    """KC-API-KEY-VERSION "1" answers 400008, anything but 1/2/3 answers 400009 (HTTP 400)."""
    client = make_client(management_key(creds), partner_of(creds), version=version)
    fails(client.get(ACCOUNTS), code, 400)


def test_key_version_2_is_accepted(make_client: ClientFactory, creds: SandboxCredentials) -> None:
    """Version 2 keys sign the passphrase like version 3 and are accepted."""
    ok(make_client(management_key(creds), partner_of(creds), version="2").get(ACCOUNTS))


def test_absent_key_version_counts_as_v1(exchange: Exchange, creds: SandboxCredentials, clock: FakeClock) -> None:
    """Without KC-API-KEY-VERSION the key is treated as version 1 and refused with 400008."""
    headers = signed(creds, clock)
    del headers["KC-API-KEY-VERSION"]
    fails(raw_get(exchange, ACCOUNTS, headers), "400008", 400)


@pytest.mark.parametrize(("skew_ms", "accepted"), [(4999, True), (-4999, True), (5000, False), (-5000, False)])
def test_timestamp_window_is_five_seconds(
    exchange: Exchange, creds: SandboxCredentials, clock: FakeClock, skew_ms: int, accepted: bool
) -> None:
    """A timestamp 5 s or more from server time, either way, answers 400002 / HTTP 400."""
    headers = sign_headers(
        management_key(creds), method="GET", path=ACCOUNTS, timestamp_ms=int(clock.now * 1000) + skew_ms,
        partner=partner_of(creds),
    )  # fmt: skip
    response = raw_get(exchange, ACCOUNTS, headers)
    if accepted:
        ok(response)
    else:
        fails(response, "400002", 400, msg="Invalid KC-API-TIMESTAMP.")


def test_non_numeric_timestamp_is_400002(exchange: Exchange, creds: SandboxCredentials, clock: FakeClock) -> None:
    """A timestamp that is not an integer answers 400002."""
    headers = signed(creds, clock)
    headers["KC-API-TIMESTAMP"] = "soon"
    fails(raw_get(exchange, ACCOUNTS, headers), "400002", 400)


def test_wrong_passphrase_is_400004(make_client: ClientFactory, creds: SandboxCredentials) -> None:
    """A passphrase that does not match the key answers 400004 / HTTP 401."""
    key = ApiKey(creds.api_key, creds.api_secret, "wrong-passphrase")
    fails(make_client(key, partner_of(creds)).get(ACCOUNTS), "400004", 401, msg="Invalid KC-API-PASSPHRASE.")


def test_wrong_secret_is_400005(exchange: Exchange, creds: SandboxCredentials, clock: FakeClock) -> None:
    """A signature made with another secret (correct passphrase header) answers 400005 / HTTP 401."""
    headers = signed(creds, clock)
    headers["KC-API-SIGN"] = sign_headers(
        ApiKey(creds.api_key, "other-secret", creds.api_passphrase), method="GET", path=ACCOUNTS,
        timestamp_ms=int(clock.now * 1000),
    )["KC-API-SIGN"]  # fmt: skip
    fails(raw_get(exchange, ACCOUNTS, headers), "400005", 401, msg="Invalid KC-API-SIGN.")


def test_tampered_query_breaks_the_signature(exchange: Exchange, creds: SandboxCredentials, clock: FakeClock) -> None:
    """The query string is part of the signed string: changing it after signing answers 400005."""
    headers = signed(creds, clock, query="currentPage=1")
    fails(raw_get(exchange, ACCOUNTS + "?currentPage=2", headers), "400005", 401)
    ok(raw_get(exchange, ACCOUNTS + "?currentPage=1", headers))


def test_unknown_partner_is_400200(make_client: ClientFactory, creds: SandboxCredentials) -> None:
    """A KC-API-PARTNER other than ours answers 400200 / HTTP 400."""
    client = make_client(management_key(creds), Partner("someone-else", creds.broker_key, creds.broker_name))
    fails(client.get(ACCOUNTS), "400200", 400, msg="Unknown partner.")


def test_bad_partner_sign_with_verify_is_400201(make_client: ClientFactory, creds: SandboxCredentials) -> None:
    """With KC-API-PARTNER-VERIFY true a partner sign keyed with anything but the broker-key answers 400201."""
    client = make_client(management_key(creds), Partner(creds.partner, creds.api_secret, creds.broker_name))
    fails(client.get(ACCOUNTS), "400201", 400, msg="Invalid KC-API-PARTNER-SIGN.")


def test_missing_partner_sign_with_verify_is_400201(
    exchange: Exchange, creds: SandboxCredentials, clock: FakeClock
) -> None:
    """With VERIFY true a missing partner sign also answers 400201."""
    headers = signed(creds, clock)
    del headers["KC-API-PARTNER-SIGN"]
    fails(raw_get(exchange, ACCOUNTS, headers), "400201", 400)


def test_bad_partner_sign_without_verify_is_ignored(
    make_client: ClientFactory, creds: SandboxCredentials, exchange: Exchange
) -> None:
    """Without VERIFY a bad partner sign is ignored: the call succeeds but counts as unattributed."""
    client = make_client(management_key(creds), Partner(creds.partner, "wrong", creds.broker_name), verify=False)
    ok(client.get(ACCOUNTS))
    make_client(management_key(creds)).get(ACCOUNTS)  # no partner headers at all: also unattributed
    make_client(management_key(creds), partner_of(creds)).get(ACCOUNTS)  # attributed
    assert exchange.state_snapshot()["stats"]["unattributed"] == 2


def test_require_partner_headers_switch(
    make_client: ClientFactory, creds: SandboxCredentials, exchange: Exchange
) -> None:
    """With require_partner_headers, ND calls without partner headers answer 400201 (default: accepted)."""
    bare = make_client(management_key(creds))
    ok(bare.get(ACCOUNTS))
    exchange.update_config({"require_partner_headers": True})
    fails(bare.get(ACCOUNTS), "400201", 400)
    ok(make_client(management_key(creds), partner_of(creds)).get(ACCOUNTS))


def test_wrong_key_family_is_400007(mgmt: httpx.Client, make_client: ClientFactory, creds: SandboxCredentials) -> None:
    """Management key on spot paths, trading or sub-account keys on ND paths answer 400007 / HTTP 403."""
    uid = new_sub(mgmt)
    key = new_key(mgmt, uid)
    trading = make_client(trading_key(creds), partner_of(creds))
    sub = make_client(ApiKey(key["apiKey"], key["secretKey"], "Aa12345678"), partner_of(creds))
    denied = "Access denied, requires more permission."
    fails(mgmt.get("/api/v1/accounts"), "400007", 403, msg=denied)
    fails(mgmt.get(f"/api/v1/sub-accounts/{uid}"), "400007", 403)
    fails(trading.get(ACCOUNTS), "400007", 403)
    fails(sub.get(ACCOUNTS), "400007", 403)
    fails(sub.get(f"/api/v1/sub-accounts/{uid}"), "400007", 403)


def test_non_json_post_is_415(mgmt: httpx.Client) -> None:
    """A POST whose Content-Type is not application/json answers 415000 / HTTP 415."""
    response = mgmt.post(ACCOUNTS, content=b'{"accountName":"Account15"}', headers={"Content-Type": "text/plain"})
    fails(response, "415000", 415, msg="Unsupported Media Type")
    ok(
        mgmt.post(
            ACCOUNTS,
            content=b'{"accountName":"Account15"}',
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
    )


def test_auth_errors_of_a_known_key_carry_rate_limit_headers(
    make_client: ClientFactory, creds: SandboxCredentials
) -> None:
    """Once the key is recognised, even an auth error carries the caller's gw-ratelimit-* headers."""
    response = make_client(ApiKey(creds.api_key, creds.api_secret, "wrong")).get(ACCOUNTS)
    assert response.headers["gw-ratelimit-limit"] == "2000"
    assert response.headers["gw-ratelimit-remaining"] == "2000"


def test_ip_whitelist_switch(mgmt: httpx.Client, make_client: ClientFactory, exchange: Exchange) -> None:
    """With enforce_ip_whitelist, a sub-account key used outside its whitelist answers 400006 / HTTP 403."""
    uid = new_sub(mgmt)
    key = new_key(mgmt, uid, ipWhitelist=["10.0.0.1"])
    client = make_client(ApiKey(key["apiKey"], key["secretKey"], "Aa12345678"))
    ok(client.get("/api/v1/accounts"))
    exchange.update_config({"enforce_ip_whitelist": True})
    fails(client.get("/api/v1/accounts"), "400006", 403, msg="Invalid request IP, the current client IP is: 127.0.0.1.")
