"""Transfers, transfer detail, deposits and withdrawals through the in-process transport."""

from __future__ import annotations

import httpx
import pytest

from sandbox import Exchange, SandboxConfig, SandboxCredentials
from tests.sandbox.conftest import FakeClock, management_key, new_sub, partner_of, transfer_body
from tests.sandbox.kc import KcAuth, fails, ok

TRANSFER = "/api/v1/broker/nd/transfer"
DETAIL = "/api/v3/broker/nd/transfer/detail"


def balances(exchange: Exchange, uid: str) -> dict[str, dict[str, str]]:
    snapshot = exchange.state_snapshot()
    if uid == snapshot["broker"]["uid"]:
        return dict(snapshot["broker"]["balances"])
    return next(dict(s["balances"]) for s in snapshot["subAccounts"] if s["uid"] == uid)


def test_transfer_out_and_in_move_funds(mgmt: httpx.Client, exchange: Exchange) -> None:
    """OUT moves Special Account wallet -> sub-account wallet; IN moves it back."""
    uid = new_sub(mgmt)
    ok(mgmt.post(TRANSFER, json=transfer_body(uid, amount="10.5")))
    assert balances(exchange, uid)["TRADE"] == {"USDT": "10.5"}
    assert balances(exchange, exchange.broker_uid)["MAIN"]["USDT"] == "99999989.5"
    ok(mgmt.post(TRANSFER, json=transfer_body(uid, amount="0.5", direction="IN", clientOid="c-2")))
    assert balances(exchange, uid)["TRADE"] == {"USDT": "10"}
    assert balances(exchange, exchange.broker_uid)["MAIN"]["USDT"] == "99999990"


def test_transfer_detail_reports_integer_uids_and_status(
    mgmt: httpx.Client, exchange: Exchange, clock: FakeClock
) -> None:
    """Get Transfer History (v3) answers one record with integer fromUid/toUid, tags DEFAULT and SUCCESS."""
    uid = new_sub(mgmt)
    order_id = ok(mgmt.post(TRANSFER, json=transfer_body(uid, accountType="MAIN", specialAccountType="MAIN")))[
        "orderId"
    ]
    assert len(order_id) == 24
    detail = ok(mgmt.get(DETAIL, params={"orderId": order_id}))
    assert detail == {
        "orderId": order_id, "currency": "USDT", "amount": "10",
        "fromUid": int(exchange.broker_uid), "fromAccountType": "MAIN", "fromAccountTag": "DEFAULT",
        "toUid": int(uid), "toAccountType": "MAIN", "toAccountTag": "DEFAULT",
        "status": "SUCCESS", "reason": None, "createdAt": int(clock.now * 1000),
    }  # fmt: skip
    fails(mgmt.get(DETAIL, params={"orderId": "0" * 24}), "400100", msg="orderId does not exist")


def test_insufficient_balance_moves_nothing(mgmt: httpx.Client, exchange: Exchange) -> None:
    """A transfer larger than the source wallet fails with 400100 account.available.amount; nothing moves."""
    uid = new_sub(mgmt)
    fails(mgmt.post(TRANSFER, json=transfer_body(uid, direction="IN")), "400100", msg="account.available.amount")
    assert balances(exchange, uid)["TRADE"] == {}
    assert exchange.state_snapshot()["transfers"] == []


@pytest.mark.parametrize(
    ("overrides", "msg"),
    [
        ({"amount": "0.000000001"}, "amount precision must not exceed 8 decimals"),
        ({"amount": "0"}, "amount must be greater than 0"),
        ({"amount": "-1"}, "amount must be a positive decimal string"),
        ({"amount": "1e3"}, "amount must be a positive decimal string"),
        ({"currency": "DOGE"}, "currency DOGE is not supported"),
        ({"direction": "SIDEWAYS"}, "direction must be one of OUT, IN"),
        ({"accountType": "CONTRACT"}, "accountType must be one of MAIN, TRADE"),
        ({"specialAccountType": "MARGIN"}, "specialAccountType must be one of MAIN, TRADE"),
        ({"specialUid": "999999999"}, "specialUid is not a sub-account of this broker"),
        ({"clientOid": "x" * 129}, "clientOid length must be at most 128"),
        ({"clientOid": None}, "clientOid is required"),
    ],
)
def test_transfer_validation(mgmt: httpx.Client, overrides: dict[str, object], msg: str) -> None:
    """Each transfer constraint fails with 400100 and a specific message."""
    body = {**transfer_body(new_sub(mgmt)), **overrides}
    fails(mgmt.post(TRANSFER, json={k: v for k, v in body.items() if v is not None}), "400100", msg=msg)


def test_amount_precision_is_configurable_per_currency(mgmt: httpx.Client, exchange: Exchange) -> None:
    """currency_precision limits the decimals of a transfer amount per currency."""
    exchange.update_config({"currency_precision": {"USDT": 2, "BTC": 8}})
    uid = new_sub(mgmt)
    fails(mgmt.post(TRANSFER, json=transfer_body(uid, amount="1.001")), "400100")
    ok(mgmt.post(TRANSFER, json=transfer_body(uid, amount="1.01")))


def test_transfer_accepts_a_json_number_amount(mgmt: httpx.Client) -> None:
    """An amount sent as a JSON number (as the old docs' example did) is accepted."""
    ok(mgmt.post(TRANSFER, json=transfer_body(new_sub(mgmt), amount=2)))


def test_deposits_from_credit_appear_in_list_and_detail(
    mgmt: httpx.Client, exchange: Exchange, clock: FakeClock
) -> None:
    """A credited deposit is listed (newest first) and readable by currency+hash; the broker's own is listed only."""
    uid = new_sub(mgmt)
    exchange.credit(uid, "USDT", "MAIN", "100", deposit=True)
    clock.advance(1)
    exchange.credit(uid, "BTC", "MAIN", "0.5", deposit=True)
    clock.advance(1)
    exchange.credit(exchange.broker_uid, "USDT", "MAIN", "7", deposit=True)
    rows = ok(mgmt.get("/api/v1/asset/ndbroker/deposit/list"))
    assert [(r["uid"], r["currency"], r["amount"]) for r in rows] == [
        (int(exchange.broker_uid), "USDT", "7"), (int(uid), "BTC", "0.5"), (int(uid), "USDT", "100"),
    ]  # fmt: skip
    assert isinstance(rows[0]["isInner"], bool) and rows[0]["status"] == "SUCCESS"
    usdt = ok(mgmt.get("/api/v1/asset/ndbroker/deposit/list", params={"currency": "USDT", "limit": 1}))
    assert [r["amount"] for r in usdt] == ["7"]
    detail = ok(mgmt.get("/api/v3/broker/nd/deposit/detail", params={"currency": "BTC", "hash": rows[1]["hash"]}))
    assert detail["uid"] == int(uid) and detail["amount"] == "0.5"
    fails(mgmt.get("/api/v3/broker/nd/deposit/detail", params={"currency": "USDT", "hash": rows[0]["hash"]}), "400100")
    fails(mgmt.get("/api/v1/asset/ndbroker/deposit/list", params={"limit": 1001}), "400100",
          msg="limit must be between 1 and 1000")  # fmt: skip
    assert balances(exchange, uid)["MAIN"] == {"BTC": "0.5", "USDT": "100"}


def test_deposit_and_withdrawal_fixtures(creds: SandboxCredentials, clock: FakeClock) -> None:
    """Fixtures in the config feed the deposit list/detail and withdraw detail endpoints, with filters."""
    config = SandboxConfig(
        deposits=({"uid": "226383154", "hash": "h1", "currency": "USDT", "amount": "5", "status": "PROCESSING",
                   "createdAt": 1000},),
        withdrawals=({"id": "67e6515f7960ba0007b42025", "uid": 226383154, "amount": "3", "status": "REVIEW"},),
    )  # fmt: skip
    exchange = Exchange(config, creds, clock=clock)
    auth = KcAuth(management_key(creds), partner=partner_of(creds), clock=clock)
    with httpx.Client(base_url="http://sandbox.test", transport=exchange.transport(), auth=auth) as mgmt:
        assert [
            r["hash"] for r in ok(mgmt.get("/api/v1/asset/ndbroker/deposit/list", params={"status": "PROCESSING"}))
        ] == ["h1"]
        assert ok(mgmt.get("/api/v1/asset/ndbroker/deposit/list", params={"startTimestamp": 2000})) == []
        assert (
            ok(mgmt.get("/api/v3/broker/nd/deposit/detail", params={"currency": "USDT", "hash": "h1"}))["uid"]
            == 226383154
        )
        withdrawal = ok(
            mgmt.get("/api/v3/broker/nd/withdraw/detail", params={"withdrawalId": "67e6515f7960ba0007b42025"})
        )
        assert (withdrawal["uid"], withdrawal["status"], withdrawal["chain"]) == (226383154, "REVIEW", "trx")
        fails(mgmt.get("/api/v3/broker/nd/withdraw/detail", params={"withdrawalId": "nope"}), "400100")


def test_credit_validates_its_input(exchange: Exchange) -> None:
    """credit refuses unknown uids, wallets, currencies, malformed amounts and negative results."""
    for args in [("123456789", "USDT", "MAIN", "1"), (exchange.broker_uid, "USDT", "FUTURES", "1"),
                 (exchange.broker_uid, "DOGE", "MAIN", "1"), (exchange.broker_uid, "USDT", "MAIN", "x"),
                 (exchange.broker_uid, "USDT", "TRADE", "-99999999999")]:  # fmt: skip
        with pytest.raises(ValueError):
            exchange.credit(*args)
