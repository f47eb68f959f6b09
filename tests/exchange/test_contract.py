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
from tests.sandbox.conftest import FakeClock
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
from worker.exchange.models import (
    AccountType,
    Direction,
    KycState,
    LedgerDirection,
    LedgerEntry,
    Permission,
    TransferStatus,
)
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


@pytest.fixture(params=["in-process", pytest.param("loopback", marks=pytest.mark.loopback)])
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
        (lambda c: c.assets.ledger(page_size=9), "page_size"),
        (lambda c: c.assets.ledger(page_size=501), "page_size"),
        (lambda c: c.assets.ledger(current_page=0), "current_page"),
        (lambda c: c.assets.ledger(direction="OUT"), "direction"),
        (lambda c: c.assets.ledger(currency=",".join(["USDT"] * 11)), "currency"),
        (lambda c: c.assets.ledger(start_ms=0, end_ms=86_400_001), "end_ms"),
        (lambda c: c.assets.ledger(start_ms=10, end_ms=9), "end_ms"),
        (lambda c: c.assets.ledger_entries(currency="USDT", direction=None, start_ms=10, end_ms=9), "end_ms"),
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


def transfer_usdt(client: ExchangeClient, uid: str, amount: str, client_oid: str, direction: Direction = Direction.OUT):
    return client.transfers.transfer(
        currency="USDT",
        amount=Decimal(amount),
        direction=direction,
        account_type=AccountType.MAIN,
        special_uid=uid,
        special_account_type=AccountType.TRADE,
        client_oid=client_oid,
    )


def test_ledger_shows_our_transfers_with_their_order_ids(side: Side) -> None:
    """Get Account Ledgers with the trading key: typed BROKER_TRANSFER entries of the Special Account, newest
    first, whose context names the orderId; filters reach the exchange; Management pool, weight 2."""
    with side.client() as client:
        sub = client.sub_accounts.add(account_name="nd0ledger1")
        out = transfer_usdt(client, sub.uid, "12.5", "ledger-out")
        back = transfer_usdt(client, sub.uid, "2.5", "ledger-in", Direction.IN)
        page = client.assets.ledger(currency="USDT", biz_type="BROKER_TRANSFER")
        assert (page.current_page, page.page_size, page.total_num, page.total_page) == (1, 50, 2, 1)
        newest, oldest = page.items
        assert isinstance(newest, LedgerEntry) and newest.direction is LedgerDirection.IN
        assert (oldest.direction, oldest.amount, oldest.account_type, oldest.biz_type) == (
            LedgerDirection.OUT, Decimal("12.5"), "MAIN", "BROKER_TRANSFER",
        )  # fmt: skip
        assert oldest.context_fields() == {"orderId": out.order_id}
        assert newest.context_fields() == {"orderId": back.order_id}
        assert oldest.created_at <= newest.created_at and oldest.fee == Decimal(0)
        only_out = client.assets.ledger(direction=LedgerDirection.OUT, page_size=10)
        assert [e.id for e in only_out.items] == [oldest.id]
        assert client.assets.ledger(currency="BTC").items == ()
    reads = [c for c in side.calls if c.endpoint.name == "get_account_ledgers"]
    assert len(reads) == 3 and all(c.outcome == "ok" for c in reads)
    assert [c.rate_limit.remaining for c in reads if c.rate_limit] == [1998, 1996, 1994]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("order_id", {"orderId"}), ("client_oid", {"orderId", "clientOid"}), ("none", set())],
)
def test_ledger_context_decodes_under_each_switch(side: Side, mode: str, expected: set[str]) -> None:
    """context_fields() gives the orderId (and clientOid) the simulator's ledger_context puts there, {} for none."""
    side.exchange.update_config({"ledger_context": mode})
    with side.client() as client:
        sub = client.sub_accounts.add(account_name="nd0ledger2")
        order = transfer_usdt(client, sub.uid, "1", "ctx-oid-1")
        (entry,) = client.assets.ledger().items
    fields = entry.context_fields()
    assert set(fields) == expected
    assert fields.get("orderId", order.order_id) == order.order_id
    assert fields.get("clientOid", "ctx-oid-1") == "ctx-oid-1"


@pytest.mark.parametrize(
    ("context", "fields"),
    [
        (None, {}),
        ("", {}),
        ("   ", {}),
        ("not json", {}),
        ("[1, 2]", {}),
        ('"a string"', {}),
        ("{" * 3000, {}),
        ("[" * 4000 + "]" * 4000, {}),
        ('{"orderId":"6306257dd9180300014c8d47"}', {"orderId": "6306257dd9180300014c8d47"}),
        (
            "{'symbol':'CSP-USDT','orderId':'63062585d9180300014c8d50'}",
            {"symbol": "CSP-USDT", "orderId": "63062585d9180300014c8d50"},
        ),
        (
            '{"tradeId":609522034689,"ok":true,"skip":null,"nested":{"a":1}}',
            {"tradeId": "609522034689", "ok": "true", "nested": '{"a":1}'},
        ),
        ({"orderId": "abc", "n": 3}, {"orderId": "abc", "n": "3"}),
        (["orderId"], {}),
    ],
)
def test_ledger_context_fields_never_raise(context: object, fields: dict[str, str]) -> None:
    """context_fields decodes a JSON (or single-quoted) object, or an object sent as such; anything else is {}."""
    entry = LedgerEntry.model_validate(
        {"id": "1", "currency": "USDT", "amount": "1", "fee": "0", "balance": "0", "accountType": "MAIN",
         "bizType": "BROKER_TRANSFER", "direction": "out", "createdAt": "1661347205743", "context": context}
    )  # fmt: skip
    assert entry.context_fields() == fields and entry.created_at == 1661347205743


@pytest.fixture(params=["in-process", pytest.param("loopback", marks=pytest.mark.loopback)])
def timed_side(request: pytest.FixtureRequest) -> Iterator[tuple[Side, FakeClock]]:
    """A side whose exchange and clients share a fake clock (days pass in a test)."""
    clock = FakeClock()
    exchange = Exchange(SandboxConfig(broker_quota=100_000, management_quota=100_000), clock=clock)
    if request.param == "in-process":
        yield Side(exchange, server=None), clock
    else:
        with start_server(exchange) as server:
            yield Side(exchange, server=server), clock


def test_ledger_entries_walks_every_window_and_page(timed_side: tuple[Side, FakeClock]) -> None:
    """ledger_entries over ~60 h returns every matching entry once, newest first, reading 24 h windows with
    500-entry pages (3 windows, the busy one 3 pages), and nothing outside the range or of another currency."""
    side, clock = timed_side
    with side.client(clock=clock) as client:
        start_ms = int(clock.now * 1000)
        sub = client.sub_accounts.add(account_name="nd0ledger3")
        expected: list[str] = []
        for i in range(1100):
            expected.append(transfer_usdt(client, sub.uid, "1", f"busy-{i}").order_id)
            clock.advance(0.01)
        client.transfers.transfer(
            currency="BTC", amount=Decimal("0.1"), direction=Direction.OUT, account_type=AccountType.MAIN,
            special_uid=sub.uid, special_account_type=AccountType.TRADE, client_oid="other-currency",
        )  # fmt: skip
        for day in range(2):
            clock.advance(30 * 3600)
            expected += [transfer_usdt(client, sub.uid, "1", f"day{day}-{i}").order_id for i in range(3)]
        back = transfer_usdt(client, sub.uid, "5", "back", Direction.IN)
        end_ms = int(clock.now * 1000)
        clock.advance(60)
        transfer_usdt(client, sub.uid, "1", "after-the-range")
        side.calls.clear()
        out = client.assets.ledger_entries(currency="USDT", direction="out", start_ms=start_ms, end_ms=end_ms)
        everything = client.assets.ledger_entries(currency="USDT", direction=None, start_ms=start_ms, end_ms=end_ms)
    assert [e.context_fields()["orderId"] for e in out] == expected[::-1]
    assert len({e.id for e in out}) == len(out) == 1106
    assert [e.created_at for e in out] == sorted((e.created_at for e in out), reverse=True)
    assert everything[0].context_fields()["orderId"] == back.order_id and len(everything) == 1107
    pages = [c for c in side.calls if c.endpoint.name == "get_account_ledgers"]
    assert len(pages) == 2 * 5, "per walk: 3 windows, the busy one in 3 pages of 500"


def test_a_ledger_read_that_fails_is_retryable(side: Side) -> None:
    """A 5xx or a lost answer on the ledger (a read) is RetryableError, never outcome-unknown."""
    with side.client() as client:
        for kind in ("5xx", "drop"):
            side.faults("get_spot_ledger", **{kind: 1.0})
            with pytest.raises(RetryableError) as info:
                client.assets.ledger()
            assert type(info.value) is RetryableError
            side.faults("get_spot_ledger", **{kind: 0.0})
        assert client.assets.ledger().total_num == 0
