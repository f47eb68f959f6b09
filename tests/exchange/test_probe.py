"""The clientOid probe tells each of the exchange's three behaviours and what its ledger carries, and leaves no
money behind."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from handlers.naming import Naming
from sandbox import Exchange, SandboxConfig
from worker.exchange import ExchangeClient, RetryableError
from worker.probe import probe_client_oid
from worker.settings import Settings


def client_for(exchange: Exchange, clock: Callable[[], float] = time.time) -> ExchangeClient:
    settings, _ = Settings.from_env(
        {"KUCOIN_BROKER_BASE_URL": "http://sandbox", "KUCOIN_SPOT_BASE_URL": "http://sandbox"}
    )
    return ExchangeClient.from_settings(settings, transport=exchange.transport(), clock=clock)


@pytest.mark.parametrize("behaviour", ["dedupe", "reject", "accept"])
@pytest.mark.parametrize(("context", "lag_ms"), [("order_id", 0), ("client_oid", 4000), ("none", 0)])
def test_the_probe_tells_the_behaviour_and_the_ledger(behaviour: str, context: str, lag_ms: int) -> None:
    now = [1_795_000_000.0]
    exchange = Exchange(
        SandboxConfig.from_dict(
            {"duplicate_client_oid": behaviour, "ledger_context": context, "ledger_lag_ms": lag_ms}
        ),
        clock=lambda: now[0],
        sleep=lambda s: None,
    )

    def sleep(seconds: float) -> None:
        now[0] += seconds

    naming = Naming("probe-test-secret")
    broker_before = exchange.state_snapshot()["broker"]["balances"]
    with client_for(exchange, lambda: now[0]) as client:
        report = probe_client_oid(
            client, naming, currency="USDT", amount=Decimal("0.00000001"), clock=lambda: now[0], sleep=sleep
        )
    assert report.behaviour == behaviour
    assert report.ledger_context == context
    assert report.ledger_lag_ms is not None and lag_ms <= report.ledger_lag_ms <= lag_ms + 2_000
    state = exchange.state_snapshot()
    (probe,) = state["subAccounts"]
    assert probe["accountName"] == naming.probe_account_name()
    assert not naming.is_account_name(probe["accountName"]), "never taken for a customer's sub-account"
    assert all(Decimal(v) == 0 for rows in probe["balances"].values() for v in rows.values())
    assert state["broker"]["balances"] == broker_before, "every unit moved back"
    assert report.settings()["PROVISIONER_CLIENT_OID_BEHAVIOUR"] == behaviour


def test_a_second_probe_reuses_the_probe_sub_account() -> None:
    exchange = Exchange(SandboxConfig(), sleep=lambda s: None)
    naming = Naming("probe-test-secret")
    with client_for(exchange) as client:
        first = probe_client_oid(client, naming, currency="USDT", amount=Decimal("0.00000001"))
        second = probe_client_oid(client, naming, currency="USDT", amount=Decimal("0.00000001"))
    assert first.sub_account == second.sub_account
    assert len(exchange.state_snapshot()["subAccounts"]) == 1


def test_a_transport_failure_is_an_error_not_a_verdict() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    settings, _ = Settings.from_env({"KUCOIN_BROKER_BASE_URL": "http://x", "KUCOIN_SPOT_BASE_URL": "http://x"})
    with (
        ExchangeClient.from_settings(settings, transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(RetryableError, match=r"(?i)connect"),
    ):
        probe_client_oid(client, Naming("s"), currency="USDT", amount=Decimal(1))
