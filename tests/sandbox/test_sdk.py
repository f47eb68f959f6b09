"""An unmodified kucoin-universal-sdk 1.3.2 client works against the simulator over loopback.

The SDK is imported by the tests that use it, not with the module: its generated models take about a second to
import, which ``./dev test-fast`` (where this ``loopback`` module is deselected, yet collected) would pay for nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox import Exchange, SandboxConfig, SandboxCredentials, SandboxServer, start_server

pytestmark = [pytest.mark.loopback, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture
def server(creds: SandboxCredentials) -> Iterator[SandboxServer]:
    with start_server(Exchange(SandboxConfig(), creds)) as running:
        yield running


def sdk_client(url: str, key: str, secret: str, passphrase: str, creds: SandboxCredentials | None = None) -> Any:
    from kucoin_universal_sdk.api.client import DefaultClient
    from kucoin_universal_sdk.model.client_option import ClientOptionBuilder
    from kucoin_universal_sdk.model.transport_option import TransportOptionBuilder

    builder = ClientOptionBuilder().set_key(key).set_secret(secret).set_passphrase(passphrase)
    if creds is not None:
        builder = builder.set_broker_partner(creds.partner).set_broker_key(creds.broker_key)
        builder = builder.set_broker_name(creds.broker_name)
    option = (
        builder.set_broker_endpoint(url).set_spot_endpoint(url).set_futures_endpoint(url)
        .set_transport_option(TransportOptionBuilder().set_read_timeout(5).build()).build()
    )  # fmt: skip
    return DefaultClient(option).rest_service()


def test_sdk_provisioning_flow(server: SandboxServer, creds: SandboxCredentials) -> None:
    """The SDK adds a sub-account, lists it, issues a key, transfers and reads the transfer detail."""
    from kucoin_universal_sdk.generate.account.account.model_get_spot_account_list_req import (
        GetSpotAccountListReqBuilder,
    )
    from kucoin_universal_sdk.generate.account.account.model_get_spot_ledger_req import (
        GetSpotLedgerReq,
        GetSpotLedgerReqBuilder,
    )
    from kucoin_universal_sdk.generate.account.subaccount.model_get_spot_sub_account_detail_req import (
        GetSpotSubAccountDetailReqBuilder,
    )
    from kucoin_universal_sdk.generate.broker.ndbroker.model_add_sub_account_api_req import (
        AddSubAccountApiReq,
        AddSubAccountApiReqBuilder,
    )
    from kucoin_universal_sdk.generate.broker.ndbroker.model_add_sub_account_req import AddSubAccountReqBuilder
    from kucoin_universal_sdk.generate.broker.ndbroker.model_delete_sub_account_api_req import (
        DeleteSubAccountApiReqBuilder,
    )
    from kucoin_universal_sdk.generate.broker.ndbroker.model_get_broker_info_req import (
        GetBrokerInfoReq,
        GetBrokerInfoReqBuilder,
    )
    from kucoin_universal_sdk.generate.broker.ndbroker.model_get_sub_account_api_req import GetSubAccountApiReqBuilder
    from kucoin_universal_sdk.generate.broker.ndbroker.model_get_sub_account_req import GetSubAccountReqBuilder
    from kucoin_universal_sdk.generate.broker.ndbroker.model_get_transfer_history_req import (
        GetTransferHistoryReqBuilder,
    )
    from kucoin_universal_sdk.generate.broker.ndbroker.model_transfer_req import TransferReq, TransferReqBuilder

    rest = sdk_client(server.url, creds.api_key, creds.api_secret, creds.api_passphrase, creds)
    nd = rest.get_broker_service().get_nd_broker_api()
    sub = nd.add_sub_account(AddSubAccountReqBuilder().set_account_name("Account15").build())
    assert sub.account_name == "Account15" and sub.common_response.rate_limit.remaining == 1997
    listed = nd.get_sub_account(GetSubAccountReqBuilder().set_current_page(1).set_page_size(10).build())
    assert [i.uid for i in listed.items] == [sub.uid] and listed.total_num == 1
    key = nd.add_sub_account_api(
        AddSubAccountApiReqBuilder().set_uid(sub.uid).set_passphrase("Aa12345678").set_ip_whitelist(["127.0.0.1"])
        .set_permissions([AddSubAccountApiReq.PermissionsEnum.GENERAL, AddSubAccountApiReq.PermissionsEnum.SPOT])
        .set_label("customer-1").build()
    )  # fmt: skip
    assert key.secret_key and key.permissions == ["General", "Spot"]
    order = nd.transfer(
        TransferReqBuilder().set_currency("USDT").set_amount("0.01").set_direction(TransferReq.DirectionEnum.OUT)
        .set_account_type(TransferReq.AccountTypeEnum.MAIN).set_special_uid(sub.uid)
        .set_special_account_type(TransferReq.SpecialAccountTypeEnum.TRADE).set_client_oid(str(uuid.uuid4())).build()
    )  # fmt: skip
    detail = nd.get_transfer_history(GetTransferHistoryReqBuilder().set_order_id(order.order_id).build())
    assert (detail.status.value, detail.from_uid, detail.to_uid, detail.amount) == (
        "SUCCESS", int(server.exchange.broker_uid), int(sub.uid), "0.01",
    )  # fmt: skip
    keys = nd.get_sub_account_api(GetSubAccountApiReqBuilder().set_uid(sub.uid).build())
    assert [k.ip_whitelist for k in keys.data] == [["127.**.1"]]
    info = nd.get_broker_info(GetBrokerInfoReqBuilder().set_trade_type(GetBrokerInfoReq.TradeTypeEnum.T_1).build())
    assert info.account_size == 1

    trading = sdk_client(server.url, creds.trading_api_key, creds.trading_api_secret, creds.trading_api_passphrase)
    balance = (
        trading.get_account_service()
        .get_sub_account_api()
        .get_spot_sub_account_detail(GetSpotSubAccountDetailReqBuilder().set_sub_user_id(sub.uid).build())
    )
    assert [(a.currency, a.balance) for a in balance.trade_accounts] == [("USDT", "0.01")]
    as_sub = sdk_client(server.url, key.api_key, key.secret_key, "Aa12345678")
    accounts = (
        as_sub.get_account_service().get_account_api().get_spot_account_list(GetSpotAccountListReqBuilder().build())
    )
    assert [(a.currency, a.type.value, a.balance) for a in accounts.data] == [("USDT", "trade", "0.01")]
    ledger = (
        trading.get_account_service().get_account_api()
        .get_spot_ledger(GetSpotLedgerReqBuilder().set_direction(GetSpotLedgerReq.DirectionEnum.OUT).build())
    )  # fmt: skip
    assert [(i.biz_type, i.amount, i.account_type) for i in ledger.items] == [("BROKER_TRANSFER", "0.01", "MAIN")]
    assert ledger.common_response.rate_limit.limit == 2000 and ledger.common_response.rate_limit.remaining == 1983

    deleted = nd.delete_sub_account_api(
        DeleteSubAccountApiReqBuilder().set_uid(sub.uid).set_api_key(key.api_key).build()
    )
    assert deleted.data is True


def test_sdk_sees_business_errors_as_rest_errors(server: SandboxServer, creds: SandboxCredentials) -> None:
    """A business failure (HTTP 200 + code 400100) surfaces in the SDK as RestError with the code."""
    from kucoin_universal_sdk.generate.broker.ndbroker.model_add_sub_account_req import AddSubAccountReqBuilder
    from kucoin_universal_sdk.model.common import RestError

    nd = sdk_client(server.url, creds.api_key, creds.api_secret, creds.api_passphrase, creds)
    nd = nd.get_broker_service().get_nd_broker_api()
    nd.add_sub_account(AddSubAccountReqBuilder().set_account_name("Account15").build())
    with pytest.raises(RestError) as caught:
        nd.add_sub_account(AddSubAccountReqBuilder().set_account_name("Account15").build())
    response = caught.value.get_common_response()
    assert (response.code, response.message) == ("400100", "accountName already exists")
