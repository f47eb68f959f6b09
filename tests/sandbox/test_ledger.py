"""Get Account Ledgers - Spot/Margin: entries of transfers and deposits, filters, paging, range, and the switches
ledger_context, ledger_lag_ms and ledger_max_range_ms."""

from __future__ import annotations

import json

import httpx
import pytest

from sandbox import Exchange
from tests.sandbox.conftest import ClientFactory, FakeClock, new_key, new_sub, transfer_body
from tests.sandbox.kc import ApiKey, fails, ok

TRANSFER = "/api/v1/broker/nd/transfer"
LEDGERS = "/api/v1/accounts/ledgers"
DAY_MS = 86_400_000


def sub_client(make_client: ClientFactory, mgmt: httpx.Client, uid: str) -> httpx.Client:
    """A client signing with a fresh key issued to sub-account ``uid``."""
    key = new_key(mgmt, uid)
    return make_client(ApiKey(key["apiKey"], key["secretKey"], "Aa12345678"))


def test_a_transfer_writes_one_broker_transfer_entry_on_each_side(
    mgmt: httpx.Client, trading: httpx.Client, make_client: ClientFactory, clock: FakeClock
) -> None:
    """OUT: the Special Account's ledger shows it 'out' of MAIN, the sub-account's 'in' to TRADE, with balances."""
    uid = new_sub(mgmt)
    order_id = ok(mgmt.post(TRANSFER, json=transfer_body(uid, amount="10.5")))["orderId"]
    page = ok(trading.get(LEDGERS))
    assert (page["currentPage"], page["pageSize"], page["totalNum"], page["totalPage"]) == (1, 50, 1, 1)
    (broker_entry,) = page["items"]
    assert set(broker_entry) == {
        "id", "currency", "amount", "fee", "balance", "accountType", "bizType", "direction", "createdAt", "context",
    }  # fmt: skip
    assert {k: v for k, v in broker_entry.items() if k != "id"} == {
        "currency": "USDT", "amount": "10.5", "fee": "0", "balance": "99999989.5", "accountType": "MAIN",
        "bizType": "BROKER_TRANSFER", "direction": "out", "createdAt": int(clock.now * 1000),
        "context": json.dumps({"orderId": order_id}, separators=(",", ":")),
    }  # fmt: skip
    (sub_entry,) = ok(sub_client(make_client, mgmt, uid).get(LEDGERS))["items"]
    assert (sub_entry["direction"], sub_entry["accountType"], sub_entry["amount"], sub_entry["balance"]) == (
        "in", "TRADE", "10.5", "10.5",
    )  # fmt: skip
    assert sub_entry["context"] == broker_entry["context"] and sub_entry["id"] != broker_entry["id"]


def test_in_transfer_is_in_on_the_special_account(mgmt: httpx.Client, trading: httpx.Client) -> None:
    """IN: the Special Account's entry is 'in' to its accountType wallet."""
    uid = new_sub(mgmt)
    ok(mgmt.post(TRANSFER, json=transfer_body(uid)))
    ok(mgmt.post(TRANSFER, json=transfer_body(uid, direction="IN", amount="4", accountType="TRADE", clientOid="c-2")))
    newest = ok(trading.get(LEDGERS))["items"][0]
    assert (newest["direction"], newest["accountType"], newest["amount"], newest["balance"]) == (
        "in", "TRADE", "4", "1000004",
    )  # fmt: skip


def test_deposits_write_deposit_entries_and_bare_credits_write_none(
    mgmt: httpx.Client, make_client: ClientFactory, exchange: Exchange
) -> None:
    """credit with deposit=true writes a DEPOSIT entry; a credit without it is not in the ledger."""
    uid = new_sub(mgmt)
    exchange.credit(uid, "BTC", "MAIN", "0.5", deposit=True)
    exchange.credit(uid, "USDT", "TRADE", "7")
    (entry,) = ok(sub_client(make_client, mgmt, uid).get(LEDGERS))["items"]
    assert (entry["bizType"], entry["direction"], entry["currency"], entry["amount"], entry["accountType"]) == (
        "DEPOSIT", "in", "BTC", "0.5", "MAIN",
    )  # fmt: skip
    with pytest.raises(ValueError, match="greater than 0"):
        exchange.credit(uid, "BTC", "MAIN", "-0.1", deposit=True)


def test_filters_newest_first_and_paging(mgmt: httpx.Client, trading: httpx.Client, clock: FakeClock) -> None:
    """currency, direction and bizType filter; items are newest first; pages hold pageSize items."""
    uid = new_sub(mgmt)
    for i in range(12):
        currency = "USDT" if i % 2 else "BTC"
        ok(mgmt.post(TRANSFER, json=transfer_body(uid, currency=currency, amount="1", clientOid=f"c-{i}")))
        clock.advance(1)
    ok(mgmt.post(TRANSFER, json=transfer_body(uid, direction="IN", amount="1", clientOid="back")))
    everything = ok(trading.get(LEDGERS, params={"pageSize": 10}))
    assert (everything["totalNum"], everything["totalPage"], len(everything["items"])) == (13, 2, 10)
    times = [e["createdAt"] for e in everything["items"]]
    assert times == sorted(times, reverse=True) and everything["items"][0]["direction"] == "in"
    second = ok(trading.get(LEDGERS, params={"pageSize": 10, "currentPage": 2}))
    assert len(second["items"]) == 3
    assert {e["id"] for e in everything["items"]}.isdisjoint(e["id"] for e in second["items"])
    btc = ok(trading.get(LEDGERS, params={"currency": "BTC"}))["items"]
    assert len(btc) == 6 and {e["currency"] for e in btc} == {"BTC"}
    both = ok(trading.get(LEDGERS, params={"currency": "BTC,USDT"}))
    assert both["totalNum"] == 13
    assert ok(trading.get(LEDGERS, params={"direction": "in"}))["totalNum"] == 1
    assert ok(trading.get(LEDGERS, params={"bizType": "BROKER_TRANSFER"}))["totalNum"] == 13
    assert ok(trading.get(LEDGERS, params={"bizType": "DEPOSIT"}))["totalNum"] == 0


@pytest.mark.parametrize(
    ("params", "msg"),
    [
        ({"pageSize": 9}, "pageSize must be between 10 and 500"),
        ({"pageSize": 501}, "pageSize must be between 10 and 500"),
        ({"currentPage": 0}, "currentPage must be at least 1"),
        ({"direction": "IN"}, "direction must be one of in, out"),
        ({"currency": ",".join(f"C{i}" for i in range(11))}, "currency must list at most 10 currencies"),
        ({"startAt": 2000, "endAt": 1000}, "endAt must not be before startAt"),
        ({"startAt": "x"}, "startAt must be an integer"),
        ({"startAt": 0, "endAt": DAY_MS + 1}, f"the interval between startAt and endAt must not exceed {DAY_MS} ms"),
    ],
)
def test_ledger_validation(trading: httpx.Client, params: dict[str, object], msg: str) -> None:
    """Each ledger parameter constraint fails with 400100 and a specific message."""
    fails(trading.get(LEDGERS, params=params), "400100", msg=msg)


def test_time_window(mgmt: httpx.Client, trading: httpx.Client, clock: FakeClock) -> None:
    """No bounds: the last 24 h; both bounds: inclusive, at most 24 h apart; one bound: 24 h on its side."""
    uid = new_sub(mgmt)
    first_ms = int(clock.now * 1000)
    ok(mgmt.post(TRANSFER, json=transfer_body(uid, clientOid="old")))
    clock.advance(DAY_MS / 1000 + 1)
    now_ms = int(clock.now * 1000)
    ok(mgmt.post(TRANSFER, json=transfer_body(uid, clientOid="new")))
    assert ok(trading.get(LEDGERS))["totalNum"] == 1, "the first transfer is older than 24 h"
    assert ok(trading.get(LEDGERS, params={"startAt": first_ms, "endAt": first_ms + DAY_MS}))["totalNum"] == 1
    assert ok(trading.get(LEDGERS, params={"startAt": first_ms + 1, "endAt": first_ms + 2}))["totalNum"] == 0
    assert ok(trading.get(LEDGERS, params={"startAt": first_ms}))["totalNum"] == 1
    assert ok(trading.get(LEDGERS, params={"endAt": now_ms}))["totalNum"] == 1


def test_ledger_max_range_ms(trading: httpx.Client, exchange: Exchange) -> None:
    """ledger_max_range_ms bounds endAt - startAt (default 24 h)."""
    ok(trading.get(LEDGERS, params={"startAt": 0, "endAt": DAY_MS}))
    exchange.update_config({"ledger_max_range_ms": 3_600_000})
    fails(
        trading.get(LEDGERS, params={"startAt": 0, "endAt": 3_600_001}),
        "400100",
        msg="the interval between startAt and endAt must not exceed 3600000 ms",
    )
    ok(trading.get(LEDGERS, params={"startAt": 0, "endAt": 3_600_000}))


@pytest.mark.parametrize(
    ("mode", "fields"),
    [("order_id", {"orderId"}), ("client_oid", {"orderId", "clientOid"}), ("none", None)],
)
def test_ledger_context(
    mgmt: httpx.Client, trading: httpx.Client, exchange: Exchange, mode: str, fields: set[str] | None
) -> None:
    """ledger_context: a JSON string with the orderId (default), orderId and clientOid, or an empty string."""
    exchange.update_config({"ledger_context": mode})
    order_id = ok(mgmt.post(TRANSFER, json=transfer_body(new_sub(mgmt), clientOid="oid-7")))["orderId"]
    context = ok(trading.get(LEDGERS))["items"][0]["context"]
    if fields is None:
        assert context == ""
        return
    decoded = json.loads(context)
    assert set(decoded) == fields and decoded["orderId"] == order_id
    assert decoded.get("clientOid", "oid-7") == "oid-7"


def test_ledger_lag_ms(mgmt: httpx.Client, trading: httpx.Client, exchange: Exchange, clock: FakeClock) -> None:
    """ledger_lag_ms: an entry is listed only that long after it was created."""
    exchange.update_config({"ledger_lag_ms": 5000})
    ok(mgmt.post(TRANSFER, json=transfer_body(new_sub(mgmt))))
    assert ok(trading.get(LEDGERS))["totalNum"] == 0
    clock.advance(4.999)
    assert ok(trading.get(LEDGERS))["totalNum"] == 0
    clock.advance(0.001)
    assert ok(trading.get(LEDGERS))["totalNum"] == 1
    assert len(exchange.state_snapshot()["ledger"]) == 2, "the state shows entries at once"


def test_ledger_keys_pool_and_weight(mgmt: httpx.Client, trading: httpx.Client, exchange: Exchange) -> None:
    """The management key is refused (400007); the trading key is counted in the Management pool, weight 2."""
    fails(mgmt.get(LEDGERS), "400007", 403)
    exchange.update_config({"management_quota": 10})
    response = trading.get(LEDGERS)
    ok(response)
    assert (response.headers["gw-ratelimit-limit"], response.headers["gw-ratelimit-remaining"]) == ("10", "8")
    assert exchange.state_snapshot()["stats"]["requests"]["get_spot_ledger"] == 2


def test_deleted_sub_key_cannot_read_and_snapshot_lists_entries_with_uid(
    mgmt: httpx.Client, make_client: ClientFactory, exchange: Exchange
) -> None:
    """A deleted sub-account key gets 400003; the state's ledger rows carry the account uid."""
    uid = new_sub(mgmt)
    ok(mgmt.post(TRANSFER, json=transfer_body(uid)))
    key = new_key(mgmt, uid)
    client = make_client(ApiKey(key["apiKey"], key["secretKey"], "Aa12345678"))
    ok(client.get(LEDGERS))
    ok(mgmt.delete("/api/v1/broker/nd/account/apikey", params={"uid": uid, "apiKey": key["apiKey"]}))
    fails(client.get(LEDGERS), "400003", 401)
    rows = exchange.state_snapshot()["ledger"]
    assert [(r["uid"], r["direction"]) for r in rows] == [(exchange.broker_uid, "out"), (uid, "in")]
