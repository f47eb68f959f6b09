"""Customer activity on live sub-accounts: seeded deposits and trades, applied lazily from the injected clock."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from sandbox import Exchange, SandboxConfig, SandboxCredentials
from sandbox.endpoints.spot import BTC_PRICE
from tests.sandbox.conftest import FakeClock, client_for, management_key, new_key, new_sub, partner_of, transfer_body
from tests.sandbox.kc import ApiKey, ok

TRANSFER = "/api/v1/broker/nd/transfer"


def customer(mgmt: httpx.Client, name: str, *, usdt: str = "1000", key: bool = True) -> str:
    """A sub-account funded with ``usdt`` in TRADE (by transfer), with a live key unless ``key`` is False."""
    uid = new_sub(mgmt, name)
    ok(mgmt.post(TRANSFER, json=transfer_body(uid, amount=usdt, clientOid=f"fund-{name}")))
    if key:
        new_key(mgmt, uid)
    return uid


def sub_state(exchange: Exchange, uid: str) -> dict[str, Any]:
    return next(s for s in exchange.state_snapshot()["subAccounts"] if s["uid"] == uid)


def entries(exchange: Exchange, uid: str, biz_type: str) -> list[dict[str, Any]]:
    return [e for e in exchange.state_snapshot()["ledger"] if e["uid"] == uid and e["bizType"] == biz_type]


def test_activity_is_off_by_default(mgmt: httpx.Client, exchange: Exchange, clock: FakeClock) -> None:
    """rate_per_s 0 (default): a keyed sub-account's balances do not move however much time passes."""
    uid = customer(mgmt, "Account01")
    before = sub_state(exchange, uid)["balances"]
    clock.advance(86_400)
    assert exchange.run_activity() == {"trades": 0, "deposits": 0, "skipped": 0}
    assert sub_state(exchange, uid)["balances"] == before
    assert exchange.state_snapshot()["stats"]["activity"] == {"trades": 0, "deposits": 0, "skipped": 0}


def test_only_sub_accounts_with_a_live_key_are_active(mgmt: httpx.Client, exchange: Exchange, clock: FakeClock) -> None:
    """A funded sub-account without a key never moves; one with a key does until its last key is deleted."""
    exchange.update_config({"activity": {"rate_per_s": 1.0}})
    keyless = customer(mgmt, "Account01", key=False)
    active = customer(mgmt, "Account02", key=False)
    key = new_key(mgmt, active)
    keyless_before = sub_state(exchange, keyless)["balances"]
    clock.advance(60)
    exchange.run_activity()
    assert sub_state(exchange, keyless)["balances"] == keyless_before
    assert entries(exchange, keyless, "TRADE_EXCHANGE") == entries(exchange, keyless, "DEPOSIT") == []
    assert entries(exchange, active, "TRADE_EXCHANGE") or entries(exchange, active, "DEPOSIT")
    ok(mgmt.delete("/api/v1/broker/nd/account/apikey", params={"uid": active, "apiKey": key["apiKey"]}))
    frozen = sub_state(exchange, active)["balances"]
    clock.advance(60)
    assert exchange.run_activity() == {"trades": 0, "deposits": 0, "skipped": 0}
    assert sub_state(exchange, active)["balances"] == frozen


def run_scenario(seed: int, rate: float = 0.5) -> dict[str, Any]:
    """One fixed request sequence with activity at ``rate``; returns accounts, ledger, transfers and counts."""
    clock = FakeClock()
    creds = SandboxCredentials.from_env({})
    config = SandboxConfig.from_dict({"seed": seed, "activity": {"rate_per_s": rate}})
    exchange = Exchange(config, creds, clock=clock)
    with client_for(exchange, management_key(creds), partner_of(creds), clock=clock) as mgmt:
        uids = [customer(mgmt, f"Account0{i}") for i in range(3)]
        for step in range(20):
            clock.advance(7)
            ok(mgmt.get("/api/v1/broker/nd/account", params={"uid": uids[step % 3]}))
    snapshot = exchange.state_snapshot()
    return {k: snapshot[k] for k in ("subAccounts", "ledger", "transfers")} | {
        "activity": snapshot["stats"]["activity"]
    }


def test_activity_is_deterministic_for_a_seed() -> None:
    """The same seed, clock and request sequence give the same activity; another seed gives other activity;
    activity does not change the uids and orderIds a seed gives."""
    first = run_scenario(seed=5)
    assert first["activity"]["trades"] + first["activity"]["deposits"] > 10
    assert run_scenario(seed=5) == first

    def moves(run: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(e["bizType"], e["currency"], e["amount"]) for e in run["ledger"]]

    assert moves(run_scenario(seed=6)) != moves(first)
    quiet = run_scenario(seed=5, rate=0.0)
    assert [s["uid"] for s in quiet["subAccounts"]] == [s["uid"] for s in first["subAccounts"]]
    assert [t["orderId"] for t in quiet["transfers"]] == [t["orderId"] for t in first["transfers"]]


def test_any_request_applies_the_activity_due(
    mgmt: httpx.Client, exchange: Exchange, clock: FakeClock, make_client: Any
) -> None:
    """Without run_activity, a sub-account's own balance read already shows the activity due by then."""
    exchange.update_config({"activity": {"rate_per_s": 2.0, "deposit_share": 0.0}})
    uid = customer(mgmt, "Account01", key=False)
    key = new_key(mgmt, uid)
    client = make_client(ApiKey(key["apiKey"], key["secretKey"], "Aa12345678"))
    clock.advance(30)
    rows = ok(client.get("/api/v1/accounts", params={"type": "trade"}))
    assert {r["currency"] for r in rows} != {"USDT"}, "trades bought other currencies"
    assert exchange.state_snapshot()["stats"]["activity"]["trades"] > 0


def test_trades_sell_at_most_the_max_fraction_at_the_invented_prices(
    mgmt: httpx.Client, exchange: Exchange, clock: FakeClock
) -> None:
    """Each trade sells at most max_trade_fraction of the held amount, buys at BTC_PRICE rounded down, writes
    an out/in pair of TRADE_EXCHANGE entries, leaves MAIN alone and never goes below zero."""
    exchange.update_config({"activity": {"rate_per_s": 1.0, "deposit_share": 0.0, "max_trade_fraction": 0.1}})
    uid = customer(mgmt, "Account01")
    clock.advance(200)
    exchange.run_activity()
    trades = entries(exchange, uid, "TRADE_EXCHANGE")
    assert len(trades) >= 100 and len(trades) % 2 == 0
    assert exchange.state_snapshot()["stats"]["activity"]["trades"] == len(trades) // 2
    for sold, bought in zip(trades[::2], trades[1::2], strict=True):
        assert (sold["direction"], bought["direction"]) == ("out", "in")
        assert sold["accountType"] == bought["accountType"] == "TRADE" and sold["context"] == bought["context"]
        held_before = Decimal(sold["balance"]) + Decimal(sold["amount"])
        assert Decimal(sold["amount"]) <= held_before * Decimal("0.1")
        value = Decimal(sold["amount"]) / Decimal(BTC_PRICE[sold["currency"]]) * Decimal(BTC_PRICE[bought["currency"]])
        assert Decimal(0) < Decimal(bought["amount"]) <= value
        assert value - Decimal(bought["amount"]) < Decimal("0.00000001")
    balances = sub_state(exchange, uid)["balances"]
    assert balances["MAIN"] == {} and all(Decimal(v) >= 0 for v in balances["TRADE"].values())


def test_deposits_are_recorded_like_credited_deposits(mgmt: httpx.Client, exchange: Exchange, clock: FakeClock) -> None:
    """deposit_share 1: deposits of deposit_max currencies land in MAIN, in the deposit list and the ledger."""
    exchange.update_config(
        {"activity": {"rate_per_s": 0.5, "deposit_share": 1.0, "deposit_max": {"USDT": "5", "BTC": None,
                                                                                "ETH": None, "KCS": None}}}
    )  # fmt: skip
    uid = customer(mgmt, "Account01")
    clock.advance(100)
    exchange.run_activity()
    deposits = entries(exchange, uid, "DEPOSIT")
    assert len(deposits) >= 20
    assert {(d["currency"], d["accountType"], d["direction"]) for d in deposits} <= {
        ("USDC", "MAIN", "in"), ("USDT", "MAIN", "in"),
    }  # fmt: skip
    usdt = [Decimal(d["amount"]) for d in deposits if d["currency"] == "USDT"]
    assert usdt and all(Decimal(0) < a <= 5 for a in usdt)
    listed = ok(mgmt.get("/api/v1/asset/ndbroker/deposit/list"))
    assert len(listed) == len(deposits) and {row["uid"] for row in listed} == {int(uid)}
    main = sub_state(exchange, uid)["balances"]["MAIN"]
    assert sum(Decimal(a) for a in main.values()) == sum(Decimal(d["amount"]) for d in deposits)
    assert exchange.state_snapshot()["stats"]["activity"]["deposits"] == len(deposits)


def test_rate_per_s_sets_the_expected_number_of_events(
    mgmt: httpx.Client, exchange: Exchange, clock: FakeClock
) -> None:
    """rate_per_s is events per second per active sub-account: 1/s over 1000 s is about 1000 events each."""
    exchange.update_config({"activity": {"rate_per_s": 1.0}})
    customer(mgmt, "Account01")
    customer(mgmt, "Account02")
    for _ in range(10):
        clock.advance(100)
        exchange.run_activity()
    stats = exchange.state_snapshot()["stats"]["activity"]
    assert 1800 < stats["trades"] + stats["deposits"] + stats["skipped"] < 2200
    assert 0.2 < stats["deposits"] / (stats["trades"] + stats["deposits"]) < 0.4, "default deposit_share 0.3"


def test_a_config_change_applies_the_old_rate_to_the_past(
    mgmt: httpx.Client, exchange: Exchange, clock: FakeClock
) -> None:
    """Switching activity on does not create events for the time before the switch."""
    customer(mgmt, "Account01")
    clock.advance(1000)
    exchange.update_config({"activity": {"rate_per_s": 1.0}})
    clock.advance(1)
    done = exchange.run_activity()
    assert done["trades"] + done["deposits"] + done["skipped"] < 10


def test_admin_activity_endpoint_runs_it(mgmt: httpx.Client, exchange: Exchange, clock: FakeClock) -> None:
    """POST /sandbox/v1/activity applies the due events and answers this run's and the total counts."""
    exchange.update_config({"activity": {"rate_per_s": 1.0}})
    customer(mgmt, "Account01")
    clock.advance(50)
    with httpx.Client(base_url="http://sandbox.test", transport=exchange.transport()) as admin:
        answer = admin.post("/sandbox/v1/activity").json()
        assert sum(answer["applied"].values()) > 10 and answer["totals"] == answer["applied"]
        again = admin.post("/sandbox/v1/activity").json()
    assert again["applied"] == {"trades": 0, "deposits": 0, "skipped": 0} and again["totals"] == answer["totals"]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"rate_per_s": -1}, "activity.rate_per_s"),
        ({"deposit_share": 1.5}, "activity.deposit_share"),
        ({"max_trade_fraction": 2}, "activity.max_trade_fraction"),
        ({"deposit_max": {"USDT": "0"}}, "activity.deposit_max.USDT"),
        ({"deposit_max": {"USDT": 5}}, "activity.deposit_max.USDT"),
        ({"deposit_max": {"DOGE": "5"}}, "activity.deposit_max: unknown currencies"),
        ({"rate": 1}, "unknown setting 'activity.rate'"),
    ],
)
def test_activity_config_is_validated(exchange: Exchange, patch: dict[str, Any], message: str) -> None:
    """Bad activity settings are refused with a message naming the field."""
    with pytest.raises(ValueError, match=message):
        exchange.update_config({"activity": patch})
