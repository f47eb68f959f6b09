"""The exchange over a real loopback HTTP/1.1 server: round trips, keep-alive, faults on the wire, admin API."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox import Exchange, SandboxConfig, SandboxCredentials, SandboxServer, SandboxTransport, start_server
from tests.sandbox.conftest import key_request, management_key, partner_of, trading_key, transfer_body
from tests.sandbox.kc import ApiKey, KcAuth, fails, ok

pytestmark = pytest.mark.loopback

ACCOUNT = "/api/v1/broker/nd/account"


@pytest.fixture
def server(creds: SandboxCredentials) -> Iterator[SandboxServer]:
    with start_server(Exchange(SandboxConfig(), creds)) as running:
        yield running


@pytest.fixture
def wire(server: SandboxServer, creds: SandboxCredentials) -> Iterator[httpx.Client]:
    auth = KcAuth(management_key(creds), partner=partner_of(creds))
    with httpx.Client(base_url=server.url, auth=auth, timeout=5.0) as client:
        yield client


def test_round_trip_over_loopback(server: SandboxServer, wire: httpx.Client, creds: SandboxCredentials) -> None:
    """Sub-account, key, transfer, transfer detail and both spot reads work over real HTTP."""
    assert server.url == f"http://127.0.0.1:{server.port}"
    uid = ok(wire.post(ACCOUNT, json={"accountName": "Account15"}))["uid"]
    assert [i["uid"] for i in ok(wire.get(ACCOUNT, params={"currentPage": 1, "pageSize": 10}))["items"]] == [uid]
    key = ok(wire.post("/api/v1/broker/nd/account/apikey", json=key_request(uid)))
    order_id = ok(wire.post("/api/v1/broker/nd/transfer", json=transfer_body(uid, amount="0.01")))["orderId"]
    assert ok(wire.get("/api/v3/broker/nd/transfer/detail", params={"orderId": order_id}))["toUid"] == int(uid)
    with httpx.Client(base_url=server.url, auth=KcAuth(trading_key(creds))) as trading:
        assert ok(trading.get(f"/api/v1/sub-accounts/{uid}"))["tradeAccounts"][0]["balance"] == "0.01"
    with httpx.Client(base_url=server.url, auth=KcAuth(ApiKey(key["apiKey"], key["secretKey"], "Aa12345678"))) as sub:
        assert [(r["currency"], r["balance"]) for r in ok(sub.get("/api/v1/accounts"))] == [("USDT", "0.01")]


def test_keep_alive_serves_several_requests_per_connection(server: SandboxServer) -> None:
    """HTTP/1.1 keep-alive: one TCP connection carries several request/response pairs."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/sandbox/v1/state")
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    conn.request("GET", "/api/v1/broker/nd/account")
    second = conn.getresponse()
    assert second.status == 400 and b"400001" in second.read()
    assert conn.sock is sock and first.version == 11
    conn.close()


def test_auth_failure_over_loopback(server: SandboxServer, creds: SandboxCredentials) -> None:
    """Auth errors travel with their HTTP status over the wire (wrong secret -> 401 400005)."""
    auth = KcAuth(ApiKey(creds.api_key, "wrong", creds.api_passphrase), partner=partner_of(creds))
    with httpx.Client(base_url=server.url, auth=auth) as client:
        fails(client.get(ACCOUNT), "400004", 401)


def test_drop_closes_the_socket_after_commit(server: SandboxServer, wire: httpx.Client) -> None:
    """A drop commits, then closes the connection without a response (RemoteProtocolError/ReadError)."""
    server.exchange.update_config({"faults": {"rate_drop": 1.0}})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        wire.post(ACCOUNT, json={"accountName": "Account15"})
    assert [s["accountName"] for s in server.exchange.state_snapshot()["subAccounts"]] == ["Account15"]


def test_slow_response_times_out_after_commit(server: SandboxServer, creds: SandboxCredentials) -> None:
    """A slow response beyond the client's read time-out raises ReadTimeout; the change is committed."""
    server.exchange.update_config({"faults": {"rate_slow": 1.0, "slow_ms": 400}})
    auth = KcAuth(management_key(creds), partner=partner_of(creds))
    timeout = httpx.Timeout(5.0, read=0.1)
    with httpx.Client(base_url=server.url, auth=auth, timeout=timeout) as client, pytest.raises(httpx.ReadTimeout):
        client.post(ACCOUNT, json={"accountName": "Account15"})
    assert len(server.exchange.state_snapshot()["subAccounts"]) == 1


def test_5xx_and_latency_over_loopback(server: SandboxServer, wire: httpx.Client) -> None:
    """5xx faults are plain 500/503 responses; latency delays the answer."""
    server.exchange.update_config({"faults": {"rate_5xx": 1.0}})
    assert wire.get(ACCOUNT).status_code in (500, 503)
    server.exchange.update_config({"faults": {"rate_5xx": 0.0, "latency_ms": 150}})
    started = time.monotonic()
    ok(wire.get(ACCOUNT))
    assert time.monotonic() - started >= 0.15


def test_admin_api(server: SandboxServer, wire: httpx.Client) -> None:
    """GET state, POST config, credit and activity work over the wire and report errors with HTTP 400."""
    state = wire.get("/sandbox/v1/state").json()
    assert set(state) == {"broker", "subAccounts", "apiKeys", "transfers", "ledger", "kyc", "stats", "config"}
    assert state["broker"]["balances"]["MAIN"]["USDT"] == "100000000"
    config = wire.post("/sandbox/v1/config", json={"max_account_size": 2, "faults": {"rate_drop": 0.0}}).json()
    assert config["max_account_size"] == 2 and server.exchange.config.max_account_size == 2
    bad = wire.post("/sandbox/v1/config", json={"max_account_size": "two"})
    assert bad.status_code == 400 and "max_account_size" in bad.json()["msg"]
    uid = ok(wire.post(ACCOUNT, json={"accountName": "Account15"}))["uid"]
    credited = wire.post(
        "/sandbox/v1/credit", json={"uid": uid, "currency": "BTC", "wallet": "TRADE", "amount": "0.25"}
    )
    assert credited.json() == {"uid": uid, "currency": "BTC", "wallet": "TRADE", "balance": "0.25"}
    assert wire.post("/sandbox/v1/credit", json={"uid": uid, "currency": "BTC"}).status_code == 400
    quiet = {"trades": 0, "deposits": 0, "skipped": 0}
    assert wire.post("/sandbox/v1/activity").json() == {"applied": quiet, "totals": quiet}
    assert wire.get("/sandbox/v1/nothing").status_code == 404


def test_admin_api_is_loopback_only(creds: SandboxCredentials) -> None:
    """Admin requests from a non-loopback address are refused with 403."""
    exchange = Exchange(SandboxConfig(), creds)
    with httpx.Client(
        base_url="http://sandbox.test", transport=SandboxTransport(exchange, client_ip="10.0.0.9")
    ) as client:
        assert client.get("/sandbox/v1/state").status_code == 403


def test_close_stops_the_server(creds: SandboxCredentials) -> None:
    """After close (or leaving the with-block) the port no longer accepts requests."""
    with start_server(Exchange(SandboxConfig(), creds)) as running:
        url = running.url
        assert httpx.get(f"{url}/sandbox/v1/state").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/sandbox/v1/state", timeout=1.0)


def test_admin_ratelimit_shows_the_broker_keys_window_without_using_quota() -> None:
    """``GET /sandbox/v1/ratelimit``: no window before any request; after one, what its headers said, and reading
    it twice changes nothing."""
    from tests.exchange.test_contract import Side

    exchange = Exchange(SandboxConfig(broker_quota=300))
    with start_server(exchange) as server:
        assert httpx.get(f"{server.url}/sandbox/v1/ratelimit").json()["Broker"] == {
            "limit": 300,
            "remaining": 300,
            "resetMs": 0,
        }
        Side(exchange, server=None).client().sub_accounts.add(account_name="nd0window1x")
        first = httpx.get(f"{server.url}/sandbox/v1/ratelimit").json()["Broker"]
        second = httpx.get(f"{server.url}/sandbox/v1/ratelimit").json()["Broker"]
    assert first["remaining"] == second["remaining"] == 297
    assert 0 < second["resetMs"] <= first["resetMs"] <= 30_000


def test_the_listen_backlog_takes_a_workers_first_burst_of_connections(server: SandboxServer) -> None:
    """A worker's threads open their connections at once (2 processes × 32 threads on a first burst). With the
    stdlib's listen backlog of 5 the kernel overflowed it (``ListenOverflows``): handshakes the client took for done
    were dropped and reset after the request was sent — a ``ReadError`` on a request the exchange never read, an
    outcome unknown the worker then waited 40 s to resolve (one bench run in four). A real exchange's front end
    queues them: the backlog is the system's ``somaxconn`` — as the kernel reports it (``ss``' Send-Q of a listening
    socket) where iproute2 is installed, else as the socket was opened."""
    backlog = server.backlog
    if shutil.which("ss") is not None:
        out = subprocess.run(
            ["ss", "-Hltn", f"sport = :{server.port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        backlog = int(out[2])  # State Recv-Q Send-Q Local Peer: a listening socket's Send-Q is its backlog
    assert backlog >= 128, backlog
