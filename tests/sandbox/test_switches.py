"""Each switch for undocumented behaviour, at its default and at its alternatives (changed at runtime)."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from sandbox import Exchange, SandboxConfig, SandboxCredentials
from tests.sandbox.conftest import (
    FakeClock,
    client_for,
    management_key,
    new_key,
    new_sub,
    partner_of,
    transfer_body,
)
from tests.sandbox.kc import fails, ok

TRANSFER = "/api/v1/broker/nd/transfer"
ACCOUNT = "/api/v1/broker/nd/account"


def sub_usdt(exchange: Exchange, uid: str) -> str | None:
    sub = next(s for s in exchange.state_snapshot()["subAccounts"] if s["uid"] == uid)
    return sub["balances"]["TRADE"].get("USDT")


def test_duplicate_client_oid_dedupe_is_the_default(mgmt: httpx.Client, exchange: Exchange) -> None:
    """dedupe: a repeat with equal parameters returns the first orderId; other parameters get 400100."""
    uid = new_sub(mgmt)
    first = ok(mgmt.post(TRANSFER, json=transfer_body(uid)))["orderId"]
    assert ok(mgmt.post(TRANSFER, json=transfer_body(uid)))["orderId"] == first
    assert sub_usdt(exchange, uid) == "10"
    fails(mgmt.post(TRANSFER, json=transfer_body(uid, amount="11")), "400100", msg="clientOid duplicated")
    assert len(exchange.state_snapshot()["transfers"]) == 1


def test_duplicate_client_oid_reject(mgmt: httpx.Client, exchange: Exchange) -> None:
    """reject: any repeated clientOid fails with 400100 "clientOid duplicated" and nothing moves."""
    exchange.update_config({"duplicate_client_oid": "reject"})
    uid = new_sub(mgmt)
    ok(mgmt.post(TRANSFER, json=transfer_body(uid)))
    fails(mgmt.post(TRANSFER, json=transfer_body(uid)), "400100", msg="clientOid duplicated")
    assert sub_usdt(exchange, uid) == "10"


def test_duplicate_client_oid_accept(mgmt: httpx.Client, exchange: Exchange) -> None:
    """accept: no uniqueness; the repeat executes again with a new orderId (kucoin-api-docs#468)."""
    exchange.update_config({"duplicate_client_oid": "accept"})
    uid = new_sub(mgmt)
    first = ok(mgmt.post(TRANSFER, json=transfer_body(uid)))["orderId"]
    assert ok(mgmt.post(TRANSFER, json=transfer_body(uid)))["orderId"] != first
    assert sub_usdt(exchange, uid) == "20"


def test_own_names_are_unique_case_insensitively(mgmt: httpx.Client) -> None:
    """Adding a name we already use (any case) fails with 400100 "accountName already exists"."""
    new_sub(mgmt, "Account15")
    fails(mgmt.post(ACCOUNT, json={"accountName": "ACCOUNT15"}), "400100", msg="accountName already exists")


def test_taken_names_and_share(
    mgmt: httpx.Client, exchange: Exchange, creds: SandboxCredentials, clock: FakeClock
) -> None:
    """taken_names and a seeded taken_name_share make names "already exist" deterministically."""
    exchange.update_config({"taken_names": ["Taken001"]})
    fails(mgmt.post(ACCOUNT, json={"accountName": "taken001"}), "400100", msg="accountName already exists")
    exchange.update_config({"taken_name_share": 1.0})
    fails(mgmt.post(ACCOUNT, json={"accountName": "Fresh001"}), "400100")
    exchange.update_config({"taken_name_share": 0.5})
    names = [f"Name{i:04d}" for i in range(40)]
    outcomes = [mgmt.post(ACCOUNT, json={"accountName": n}).json()["code"] for n in names]
    assert 5 < outcomes.count("400100") < 35
    twin = Exchange(SandboxConfig(taken_name_share=0.5), creds, clock=clock)
    with client_for(twin, management_key(creds), partner_of(creds), clock=clock) as twin_client:
        assert [twin_client.post(ACCOUNT, json={"accountName": n}).json()["code"] for n in names] == outcomes


@pytest.mark.parametrize("name", ["short1", "abcdefgh", "12345678", "has space1", "x" * 31 + "1a"])
def test_name_rules(mgmt: httpx.Client, exchange: Exchange, name: str) -> None:
    """enforce_name_rules (default on): 7-32 letters and digits with both; off accepts anything."""
    fails(mgmt.post(ACCOUNT, json={"accountName": name}), "400100")
    exchange.update_config({"enforce_name_rules": False})
    ok(mgmt.post(ACCOUNT, json={"accountName": name}))


def test_max_keys_per_subaccount(mgmt: httpx.Client, exchange: Exchange) -> None:
    """The 6th live key fails with 400100 "api key count exceeds the limit"; deleting one frees a slot."""
    uid = new_sub(mgmt)
    keys = [new_key(mgmt, uid, label=f"key-{i}") for i in range(5)]
    fails(mgmt.post("/api/v1/broker/nd/account/apikey", json={
        "uid": uid, "passphrase": "Aa12345678", "ipWhitelist": [], "permissions": ["general"], "label": "key-6",
    }), "400100", msg="api key count exceeds the limit")  # fmt: skip
    ok(mgmt.delete("/api/v1/broker/nd/account/apikey", params={"uid": uid, "apiKey": keys[0]["apiKey"]}))
    new_key(mgmt, uid, label="key-6")
    exchange.update_config({"max_keys_per_subaccount": 7})
    new_key(mgmt, uid, label="key-7")


def test_broker_info_requires_dates(mgmt: httpx.Client, exchange: Exchange) -> None:
    """broker_info_requires_dates (default off) makes begin/end/tradeType mandatory."""
    ok(mgmt.get("/api/v1/broker/nd/info"))
    exchange.update_config({"broker_info_requires_dates": True})
    fails(mgmt.get("/api/v1/broker/nd/info", params={"tradeType": "1"}), "400100", msg="begin is required")
    ok(mgmt.get("/api/v1/broker/nd/info", params={"begin": "20240601", "end": "20240610", "tradeType": "1"}))


def test_subaccount_order(mgmt: httpx.Client, exchange: Exchange, clock: FakeClock) -> None:
    """subaccount_order asc (default) or desc by creation."""
    first = new_sub(mgmt, "Account01")
    clock.advance(1)
    second = new_sub(mgmt, "Account02")
    assert [i["uid"] for i in ok(mgmt.get(ACCOUNT))["items"]] == [first, second]
    exchange.update_config({"subaccount_order": "desc"})
    assert [i["uid"] for i in ok(mgmt.get(ACCOUNT))["items"]] == [second, first]


def test_transfer_processing_ms(mgmt: httpx.Client, exchange: Exchange, clock: FakeClock) -> None:
    """transfer_processing_ms: the detail reads PROCESSING for that long, then SUCCESS."""
    exchange.update_config({"transfer_processing_ms": 3000})
    order_id = ok(mgmt.post(TRANSFER, json=transfer_body(new_sub(mgmt))))["orderId"]
    detail = "/api/v3/broker/nd/transfer/detail"
    assert ok(mgmt.get(detail, params={"orderId": order_id}))["status"] == "PROCESSING"
    clock.advance(3)
    assert ok(mgmt.get(detail, params={"orderId": order_id}))["status"] == "SUCCESS"


def test_transfer_credit_on_completion(mgmt: httpx.Client, exchange: Exchange, clock: FakeClock) -> None:
    """transfer_credit on_completion: the Special Account is debited when the transfer is accepted, the sub-account
    credited only when it leaves PROCESSING (the sub-account's ledger entry stamped then); at_once credits both at
    once."""
    exchange.update_config({"transfer_processing_ms": 3000, "transfer_credit": "on_completion"})
    uid = new_sub(mgmt)
    broker_before = Decimal(exchange.state_snapshot()["broker"]["balances"]["MAIN"]["USDT"])

    def held() -> tuple[Decimal, Decimal]:
        snapshot = exchange.state_snapshot()
        sub = next(s for s in snapshot["subAccounts"] if s["uid"] == uid)
        broker = Decimal(snapshot["broker"]["balances"]["MAIN"]["USDT"])
        return broker_before - broker, Decimal(sub["balances"]["TRADE"].get("USDT", "0"))

    ok(mgmt.post(TRANSFER, json=transfer_body(uid)))
    amount = Decimal(transfer_body(uid)["amount"])
    assert held() == (amount, 0)
    clock.advance(3)
    assert held() == (amount, amount)
    exchange.update_config({"transfer_credit": "at_once"})
    ok(mgmt.post(TRANSFER, json=transfer_body(uid, clientOid="c-2")))
    assert held() == (2 * amount, 2 * amount)
    with pytest.raises(ValueError, match="transfer_credit"):
        exchange.update_config({"transfer_credit": "later"})


def test_max_account_size(mgmt: httpx.Client, exchange: Exchange) -> None:
    """max_account_size caps sub-accounts (400100 "sub-account count exceeds the limit") and shows in broker info."""
    exchange.update_config({"max_account_size": 1})
    new_sub(mgmt, "Account01")
    fails(mgmt.post(ACCOUNT, json={"accountName": "Account02"}), "400100", msg="sub-account count exceeds the limit")
    assert ok(mgmt.get("/api/v1/broker/nd/info"))["maxAccountSize"] == 1


def test_business_error_status(mgmt: httpx.Client, exchange: Exchange) -> None:
    """business_error_status: business/validation failures use HTTP 200 (default) or 400."""
    fails(mgmt.post(ACCOUNT, json={}), "400100", 200)
    exchange.update_config({"business_error_status": 400})
    fails(mgmt.post(ACCOUNT, json={}), "400100", 400)


def test_update_config_refuses_bad_patches_and_keeps_the_old_config(exchange: Exchange) -> None:
    """A bad patch raises ValueError and changes nothing."""
    before = exchange.config
    with pytest.raises(ValueError, match="max_account_size"):
        exchange.update_config({"subaccount_order": "desc", "max_account_size": -1})
    assert exchange.config is before


def test_listing_lag_ms_delays_new_sub_accounts_and_keys(
    mgmt: httpx.Client, exchange: Exchange, clock: FakeClock
) -> None:
    """listing_lag_ms: a new sub-account and a new key are listed only that long after creation; the Add
    responses are immediate and a deleted key leaves the listing at once."""
    exchange.update_config({"listing_lag_ms": 2000})
    uid = new_sub(mgmt)
    key = new_key(mgmt, uid)
    keys = "/api/v1/broker/nd/account/apikey"
    assert ok(mgmt.get(ACCOUNT))["items"] == [] and ok(mgmt.get(ACCOUNT, params={"uid": uid}))["totalNum"] == 0
    assert ok(mgmt.get(keys, params={"uid": uid})) == []
    clock.advance(1.999)
    assert ok(mgmt.get(ACCOUNT))["totalNum"] == 0
    clock.advance(0.001)
    assert [i["uid"] for i in ok(mgmt.get(ACCOUNT))["items"]] == [uid]
    assert [k["apiKey"] for k in ok(mgmt.get(keys, params={"uid": uid}))] == [key["apiKey"]]
    ok(mgmt.delete(keys, params={"uid": uid, "apiKey": key["apiKey"]}))
    assert ok(mgmt.get(keys, params={"uid": uid})) == []


def test_listing_lag_is_off_by_default(mgmt: httpx.Client) -> None:
    """With the default listing_lag_ms 0, a sub-account and its key are listed at once."""
    uid = new_sub(mgmt)
    key = new_key(mgmt, uid)
    assert [i["uid"] for i in ok(mgmt.get(ACCOUNT))["items"]] == [uid]
    assert [k["apiKey"] for k in ok(mgmt.get("/api/v1/broker/nd/account/apikey", params={"uid": uid}))] == [
        key["apiKey"]
    ]


DETAIL = "/api/v3/broker/nd/transfer/detail"


def test_transfer_failure_share_accepts_then_fails_without_moving_funds(
    mgmt: httpx.Client, trading: httpx.Client, exchange: Exchange, clock: FakeClock
) -> None:
    """transfer_failure_share 1: the orderId is returned, nothing moves, no ledger entry; PROCESSING for
    transfer_processing_ms, then FAILURE with a reason, in the detail and in the state."""
    exchange.update_config({"transfer_failure_share": 1.0, "transfer_processing_ms": 3000})
    uid = new_sub(mgmt)
    before = exchange.state_snapshot()["broker"]["balances"]
    order_id = ok(mgmt.post(TRANSFER, json=transfer_body(uid)))["orderId"]
    detail = ok(mgmt.get(DETAIL, params={"orderId": order_id}))
    assert (detail["status"], detail["reason"]) == ("PROCESSING", None)
    assert exchange.state_snapshot()["transfers"][0]["status"] == "PROCESSING"
    clock.advance(3)
    detail = ok(mgmt.get(DETAIL, params={"orderId": order_id}))
    assert (detail["status"], detail["reason"]) == ("FAILURE", "sandbox: transfer failed")
    snapshot = exchange.state_snapshot()
    (row,) = snapshot["transfers"]
    assert (row["orderId"], row["clientOid"], row["status"], row["reason"]) == (
        order_id, "c-1", "FAILURE", "sandbox: transfer failed",
    )  # fmt: skip
    assert snapshot["broker"]["balances"] == before and sub_usdt(exchange, uid) is None
    assert snapshot["ledger"] == [] and ok(trading.get("/api/v1/accounts/ledgers"))["totalNum"] == 0


def test_transfer_failure_share_is_seeded_per_order(mgmt: httpx.Client, exchange: Exchange) -> None:
    """A share of 0.5 fails some transfers and not others; a successful transfer reports reason null."""
    exchange.update_config({"transfer_failure_share": 0.5})
    uid = new_sub(mgmt)
    order_ids = [ok(mgmt.post(TRANSFER, json=transfer_body(uid, clientOid=f"c-{i}")))["orderId"] for i in range(30)]
    rows = {t["orderId"]: t for t in exchange.state_snapshot()["transfers"]}
    statuses = [rows[o]["status"] for o in order_ids]
    assert 3 < statuses.count("FAILURE") < 27 and set(statuses) == {"SUCCESS", "FAILURE"}
    assert sub_usdt(exchange, uid) == str(10 * statuses.count("SUCCESS"))
    assert all((rows[o]["reason"] is None) == (rows[o]["status"] == "SUCCESS") for o in order_ids)


@pytest.mark.parametrize(("policy", "repeat_code"), [("dedupe", "200000"), ("reject", "400100"), ("accept", "200000")])
def test_a_failed_transfer_keeps_its_client_oid_used(
    mgmt: httpx.Client, exchange: Exchange, policy: str, repeat_code: str
) -> None:
    """After a FAILED transfer its clientOid counts as used: dedupe answers the failed orderId (nothing moves),
    reject refuses, accept executes the repeat as a new transfer."""
    exchange.update_config({"transfer_failure_share": 1.0, "duplicate_client_oid": policy})
    uid = new_sub(mgmt)
    failed = ok(mgmt.post(TRANSFER, json=transfer_body(uid)))["orderId"]
    exchange.update_config({"transfer_failure_share": 0.0})
    repeat = mgmt.post(TRANSFER, json=transfer_body(uid)).json()
    assert repeat["code"] == repeat_code
    transfers = exchange.state_snapshot()["transfers"]
    if policy == "dedupe":
        assert repeat["data"]["orderId"] == failed and len(transfers) == 1 and sub_usdt(exchange, uid) is None
    elif policy == "reject":
        assert repeat["msg"] == "clientOid duplicated" and sub_usdt(exchange, uid) is None
    else:
        assert repeat["data"]["orderId"] != failed and sub_usdt(exchange, uid) == "10"
        assert [t["status"] for t in transfers] == ["FAILURE", "SUCCESS"]
