"""Contract tests: every client method against the simulator, in-process and over loopback.

They prove the round trip of each endpoint, the validation errors, the signature failures, the 429 path with
its headers, pagination, and each injected fault surfacing as the right error class.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from sandbox import Exchange, SandboxConfig, SandboxServer, start_server
from worker.exchange import (
    AuthConfigError,
    ExchangeClient,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    RequestValidationError,
    RetryableError,
)
from worker.exchange.http import CallRecord, KucoinHttp
from worker.exchange.models import AccountType, Direction, KycState, Permission, TransferStatus
from worker.exchange.requests import KycSubmission, build
from worker.settings import DEV_DEFAULT_SECRETS, KucoinCredentials

PHOTO = "data:image/png;base64,iVBORw0KGgo="
D = DEV_DEFAULT_SECRETS
MANAGEMENT = KucoinCredentials(
    api_key=D["KUCOIN_API_KEY"],
    api_secret=D["KUCOIN_API_SECRET"],
    api_passphrase=D["KUCOIN_API_PASSPHRASE"],
    partner=D["KUCOIN_BROKER_PARTNER"],
    broker_key=D["KUCOIN_BROKER_KEY"],
    broker_name=D["KUCOIN_BROKER_NAME"],
)
TRADING = KucoinCredentials(
    api_key=D["KUCOIN_TRADING_API_KEY"],
    api_secret=D["KUCOIN_TRADING_API_SECRET"],
    api_passphrase=D["KUCOIN_TRADING_API_PASSPHRASE"],
)
TIMEOUT = httpx.Timeout(connect=1, read=1.5, write=1, pool=1)


class Side:
    """The simulator reached one way or the other, and a client factory for it."""

    def __init__(self, exchange: Exchange, *, server: SandboxServer | None) -> None:
        self.exchange = exchange
        self.server = server
        self.calls: list[CallRecord] = []

    def client(self, management: KucoinCredentials = MANAGEMENT, *, clock=time.time) -> ExchangeClient:
        base = self.server.url if self.server else "http://sandbox"
        transport = None if self.server else self.exchange.transport()
        return ExchangeClient(
            KucoinHttp(
                broker_base_url=base,
                spot_base_url=base,
                management=management,
                trading=TRADING,
                timeout=TIMEOUT,
                transport=transport,
                observers=[self.calls.append],
                clock=clock,
            )
        )

    def faults(self, endpoint: str, **rates: float) -> None:
        self.exchange.update_config({"faults": {"per_endpoint": {endpoint: rates}}})


@pytest.fixture(params=["in-process", "loopback"])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    config = SandboxConfig.from_dict({"faults": {"slow_ms": 4000, "inprocess_max_sleep_ms": 5}})
    exchange = Exchange(config)
    if request.param == "in-process":
        yield Side(exchange, server=None)
    else:
        with start_server(exchange) as server:
            yield Side(exchange, server=server)


def add_key(client: ExchangeClient, uid: str, label: str = "prov-g0000"):
    return client.api_keys.add(
        uid=uid,
        passphrase="Passphrase123",
        ip_whitelist=["203.0.113.10"],
        permissions=[Permission.GENERAL, Permission.SPOT],
        label=label,
    )


def test_every_endpoint_round_trips(side: Side) -> None:
    """Sub-accounts, keys, transfers, balances, KYC, deposits, withdrawals, broker info and rebates."""
    with side.client() as client:
        sub = client.sub_accounts.add(account_name="nd0contract1")
        assert sub.account_name == "nd0contract1" and sub.uid.isdigit()
        page = client.sub_accounts.page(current_page=1, page_size=10)
        assert [s.uid for s in page.items] == [sub.uid] and page.total_num == 1
        assert client.sub_accounts.page(uid=sub.uid).items[0].account_name == "nd0contract1"

        key = add_key(client, sub.uid)
        assert key.secret_key.get_secret_value() and key.permissions == ("general", "spot")
        assert "secret" not in repr(key).lower().replace("secret_key=secretstr", "")
        (listed,) = client.api_keys.list(uid=sub.uid)
        assert listed.api_key == key.api_key and listed.ip_whitelist != ("203.0.113.10",)  # masked by KuCoin
        modified = client.api_keys.modify(
            uid=sub.uid,
            api_key=key.api_key,
            ip_whitelist=["198.51.100.7"],
            permissions=[Permission.SPOT],
            label="prov-g0000",
        )
        assert modified.permissions == ("spot",)

        order = client.transfers.transfer(
            currency="USDT",
            amount=Decimal("12.5"),
            direction=Direction.OUT,
            account_type=AccountType.MAIN,
            special_uid=sub.uid,
            special_account_type=AccountType.TRADE,
            client_oid="contract-1",
        )
        detail = client.transfers.get(order_id=order.order_id)
        assert (detail.status, detail.amount, detail.to_uid) == (TransferStatus.SUCCESS, Decimal("12.5"), sub.uid)
        balances = client.assets.sub_account_balances(uid=sub.uid)
        assert balances.wallet(AccountType.TRADE)["USDT"].balance == Decimal("12.5")

        client.kyc.submit(
            build(
                KycSubmission,
                "submit_kyc",
                client_uid=sub.uid,
                first_name="A",
                last_name="B",
                issue_country="DE",
                birth_date="1990-01-01",
                identity_type="passport",
                identity_number="X1",
                expire_date="2099-01-01",
                front_photo=PHOTO,
                face_photo=PHOTO,
            )
        )
        (status,) = client.kyc.status(client_uids=[sub.uid])
        assert status.client_uid == sub.uid and status.status in (KycState.PROCESS, KycState.PASS)
        assert client.kyc.status_page(page_number=1, page_size=10).total_num == 1

        side.exchange.credit(sub.uid, "USDT", "MAIN", "3", deposit=True)
        deposits = client.assets.deposits(currency="USDT", limit=10)
        assert deposits and deposits[0].amount == Decimal("3")
        assert client.assets.deposit(currency="USDT", tx_hash=deposits[0].hash or "").amount == Decimal("3")
        with pytest.raises(PermanentError):
            client.assets.withdrawal(withdrawal_id="0" * 24)

        info = client.broker.info()
        assert info.account_size == 1
        url = client.broker.rebate_url(begin="20261001", end="20261101")
        assert url.startswith("http")

        assert client.api_keys.delete(uid=sub.uid, api_key=key.api_key) is True
        assert client.api_keys.list(uid=sub.uid) == ()


def test_pagination_walks_every_page(side: Side) -> None:
    with side.client() as client:
        names = {f"nd0page{i:03d}x" for i in range(23)}
        for name in names:
            client.sub_accounts.add(account_name=name)
        page = client.sub_accounts.page(current_page=3, page_size=10)
        assert (page.current_page, page.total_page, len(page.items), page.total_num) == (3, 3, 3, 23)
        assert {s.account_name for s in client.sub_accounts.iter_all(page_size=7)} == names


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.sub_accounts.page(page_size=101), "page_size"),
        (lambda c: c.sub_accounts.add(account_name="has space"), "account_name"),
        (lambda c: add_key(c, "123", label="abc"), "label"),
        (
            lambda c: c.api_keys.add(
                uid="123",
                passphrase="Passphrase123",
                ip_whitelist=["10.0.0.1"] * 21,
                permissions=[Permission.SPOT],
                label="prov-g0000",
            ),
            "ip_whitelist",
        ),
        (
            lambda c: c.transfers.transfer(
                currency="USDT",
                amount=Decimal("-1"),
                direction=Direction.OUT,
                account_type=AccountType.MAIN,
                special_uid="1",
                special_account_type=AccountType.MAIN,
                client_oid="x",
            ),
            "amount",
        ),
        (lambda c: c.broker.rebate_url(begin="20260101", end="20261231"), "end"),
        (lambda c: c.assets.deposits(limit=1001), "limit"),
        (lambda c: c.kyc.status(client_uids=[]), "client_uids"),
    ],
)
def test_invalid_requests_are_refused_before_sending(side: Side, call, field: str) -> None:
    with side.client() as client, pytest.raises(RequestValidationError) as info:
        call(client)
    assert info.value.field == field
    assert side.exchange.state_snapshot()["stats"]["requests"] == {}, "nothing reached the exchange"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"api_secret": "wrong"}, "400004"),  # the passphrase is HMAC'd with the secret: checked first
        ({"api_passphrase": "wrong-passphrase"}, "400004"),
        ({"broker_key": "wrong-broker-key"}, "400201"),
        ({"partner": "someone-else"}, "400200"),
        ({"api_key": "no-such-key"}, "400003"),
    ],
)
def test_signature_failures_are_auth_config(side: Side, change: dict[str, str], code: str) -> None:
    with side.client(dataclasses.replace(MANAGEMENT, **change)) as client, pytest.raises(AuthConfigError) as info:
        client.broker.info()
    assert info.value.code == code
    assert "wrong" not in str(info.value) and "no-such" not in str(info.value).replace("no-such-key", "")


class Tamper(httpx.BaseTransport):
    """Changes the query after signing, as a proxy rewriting requests would."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_merge_params({"tradeType": "2"})
        return self.inner.handle_request(request)


def test_a_request_changed_after_signing_is_refused_as_wrong_sign(side: Side) -> None:
    base = side.server.url if side.server else "http://sandbox"
    inner = side.exchange.transport() if side.server is None else httpx.HTTPTransport()
    http = KucoinHttp(
        broker_base_url=base,
        spot_base_url=base,
        management=MANAGEMENT,
        trading=TRADING,
        timeout=TIMEOUT,
        transport=Tamper(inner),
    )
    with ExchangeClient(http) as client, pytest.raises(AuthConfigError) as info:
        client.broker.info(trade_type="1")
    assert info.value.code == "400005"


@pytest.mark.parametrize("skew_s", [-6, 6])
def test_stale_timestamp_is_auth_config(side: Side, skew_s: int) -> None:
    with side.client(clock=lambda: time.time() + skew_s) as client, pytest.raises(AuthConfigError) as info:
        client.broker.info()
    assert info.value.code == "400002"


def test_429_carries_the_reset_time_and_headers_are_read_on_every_response(side: Side) -> None:
    side.exchange.update_config({"broker_quota": 5})
    with side.client() as client:
        client.broker.info()
        client.broker.info()  # 4 of 5 used
        with pytest.raises(RateLimitedError) as info:
            client.broker.info()
    assert info.value.http_status == 429 and info.value.code == "429000"
    assert info.value.retry_after_ms is not None and 0 < info.value.retry_after_ms <= 30_000
    assert all(c.rate_limit is not None and c.rate_limit.limit == 5 for c in side.calls)
    assert [c.rate_limit.remaining for c in side.calls if c.rate_limit] == [3, 1, 1]


@pytest.mark.parametrize(
    ("kind", "write_error", "read_error"),
    [
        ("5xx", OutcomeUnknownError, RetryableError),
        ("drop", OutcomeUnknownError, RetryableError),
        ("slow", OutcomeUnknownError, RetryableError),
        ("429", RateLimitedError, RateLimitedError),
    ],
)
def test_each_fault_surfaces_as_the_right_error_class(
    side: Side, kind: str, write_error: type, read_error: type
) -> None:
    """Writes whose outcome is lost are 'outcome unknown'; reads are retryable; 429 bursts are rate limits."""
    with side.client() as client:
        side.faults("add_sub_account", **{kind: 1.0})
        with pytest.raises(write_error) as written:
            client.sub_accounts.add(account_name="nd0fault1x")
        side.faults("add_sub_account", **{kind: 0.0})
        if kind == "429":
            side.exchange.update_config({"faults": {"burst_429_ms": 0}})
        side.faults("get_sub_account", **{kind: 1.0})
        with pytest.raises(read_error):
            client.sub_accounts.page()
        side.faults("get_sub_account", **{kind: 0.0})
    assert type(written.value) is write_error
    names = {s["accountName"] for s in side.exchange.state_snapshot()["subAccounts"]}
    committed = kind in ("drop", "slow")
    assert ("nd0fault1x" in names) is committed, "drop/slow commit before losing the response; 5xx/429 do not"
