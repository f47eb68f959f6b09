"""State invariants: funds are conserved and never negative, under random sequences and concurrent clients; the
ledger explains every balance."""

from __future__ import annotations

import threading
from decimal import Decimal

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import Exchange, SandboxConfig, SandboxCredentials, start_server
from tests.sandbox.conftest import (
    FakeClock,
    client_for,
    management_key,
    new_key,
    new_sub,
    partner_of,
    transfer_body,
)
from tests.sandbox.kc import KcAuth, ok

CREDS = SandboxCredentials.from_env({})


def total_usdt(exchange: Exchange) -> Decimal:
    snapshot = exchange.state_snapshot()
    accounts = [snapshot["broker"], *snapshot["subAccounts"]]
    amounts = [Decimal(a["balances"][w].get("USDT", "0")) for a in accounts for w in ("MAIN", "TRADE")]
    assert all(amount >= 0 for amount in amounts)
    return sum(amounts, Decimal(0))


moves = st.lists(
    st.tuples(
        st.sampled_from(["OUT", "IN"]),
        st.sampled_from(["MAIN", "TRADE"]),
        st.sampled_from(["MAIN", "TRADE"]),
        st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("2000000"), places=8),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(moves)
def test_random_transfers_conserve_funds(sequence: list[tuple[str, str, str, Decimal]]) -> None:
    """Whatever OUT/IN transfers succeed or fail, the USDT total is constant and no balance goes negative."""
    clock = FakeClock()
    exchange = Exchange(SandboxConfig(), CREDS, clock=clock)
    with client_for(exchange, management_key(CREDS), partner_of(CREDS), clock=clock) as mgmt:
        uid = new_sub(mgmt)
        before = total_usdt(exchange)
        for i, (direction, broker_wallet, sub_wallet, amount) in enumerate(sequence):
            body = transfer_body(
                uid, direction=direction, accountType=broker_wallet, specialAccountType=sub_wallet,
                amount=format(amount, "f"), clientOid=f"c-{i}",
            )  # fmt: skip
            assert mgmt.post("/api/v1/broker/nd/transfer", json=body).json()["code"] in ("200000", "400100")
        assert total_usdt(exchange) == before


@pytest.mark.loopback
def test_concurrent_clients_over_loopback_keep_state_consistent() -> None:
    """Eight threads transferring over the real server: every accepted transfer is applied exactly once."""
    exchange = Exchange(SandboxConfig(), CREDS)
    with start_server(exchange) as server:
        auth = KcAuth(management_key(CREDS), partner=partner_of(CREDS))
        with httpx.Client(base_url=server.url, auth=auth) as setup:
            uid = ok(setup.post("/api/v1/broker/nd/account", json={"accountName": "Account15"}))["uid"]
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                with httpx.Client(base_url=server.url, auth=auth, timeout=10) as client:
                    for i in range(15):
                        body = transfer_body(uid, amount="1", clientOid=f"t{n}-{i}")
                        ok(client.post("/api/v1/broker/nd/transfer", json=body))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    snapshot = exchange.state_snapshot()
    assert snapshot["subAccounts"][0]["balances"]["TRADE"]["USDT"] == "120"
    assert len(snapshot["transfers"]) == 120
    assert snapshot["stats"]["requests"]["transfer"] == 120


def check_ledger_explains_balances(exchange: Exchange) -> int:
    """Every wallet's balance is its opening balance plus its ledger entries, and each entry's ``balance`` is the
    running total right after it. Returns the number of entries checked."""
    snapshot = exchange.state_snapshot()
    opening = snapshot["config"]["initial_balances"]
    running: dict[tuple[str, str, str], Decimal] = {}
    for entry in snapshot["ledger"]:
        key = (entry["uid"], entry["accountType"], entry["currency"])
        start = opening.get(key[1], {}).get(key[2], "0") if key[0] == exchange.broker_uid else "0"
        sign = 1 if entry["direction"] == "in" else -1
        running[key] = running.get(key, Decimal(start)) + sign * Decimal(entry["amount"])
        assert Decimal(entry["balance"]) == running[key] >= 0, entry
    for account in [snapshot["broker"], *snapshot["subAccounts"]]:
        for wallet, amounts in account["balances"].items():
            for currency, amount in amounts.items():
                key = (account["uid"], wallet, currency)
                start = opening.get(wallet, {}).get(currency, "0") if account is snapshot["broker"] else "0"
                assert running.get(key, Decimal(start)) == Decimal(amount), key
    return len(snapshot["ledger"])


@settings(max_examples=25, deadline=None)
@given(moves, st.floats(min_value=0, max_value=1), st.integers(min_value=0, max_value=3))
def test_the_ledger_explains_every_balance(
    sequence: list[tuple[str, str, str, Decimal]], failure_share: float, seed: int
) -> None:
    """Under random transfers, failed transfers and customer activity, each balance equals opening + ledger."""
    clock = FakeClock()
    config = SandboxConfig.from_dict(
        {"seed": seed, "transfer_failure_share": failure_share, "activity": {"rate_per_s": 0.2}}
    )
    exchange = Exchange(config, CREDS, clock=clock)
    with client_for(exchange, management_key(CREDS), partner_of(CREDS), clock=clock) as mgmt:
        uid = new_sub(mgmt)
        new_key(mgmt, uid)
        for i, (direction, broker_wallet, sub_wallet, amount) in enumerate(sequence):
            clock.advance(3)
            body = transfer_body(
                uid, direction=direction, accountType=broker_wallet, specialAccountType=sub_wallet,
                amount=format(amount, "f"), clientOid=f"c-{i}",
            )  # fmt: skip
            assert mgmt.post("/api/v1/broker/nd/transfer", json=body).json()["code"] in ("200000", "400100")
    check_ledger_explains_balances(exchange)
