"""The endpoint table: every KuCoin path the simulator serves, with pool and weight (docs/kucoin-api.md §4.3,
§6.17, §8)."""

from __future__ import annotations

from sandbox.endpoints import accounts, apikeys, funds, kyc, ledgers, reports, spot
from sandbox.routes import Route

__all__ = ["ROUTES"]

_B = "Broker"

ROUTES: tuple[Route, ...] = (
    Route("submit_kyc", "POST", "/api/kyc/ndBroker/proxyClient/submit", "nd", _B, 1, kyc.submit_kyc),
    Route("get_kyc_status", "GET", "/api/kyc/ndBroker/proxyClient/status/list", "nd", _B, 1, kyc.get_kyc_status),
    Route(
        "get_kyc_status_list", "GET", "/api/kyc/ndBroker/proxyClient/status/page", "nd", _B, 1,
        kyc.get_kyc_status_list,
    ),
    Route("get_rebase", "GET", "/api/v1/broker/nd/rebase/download", "nd", _B, 3, reports.get_rebase),
    Route("get_broker_info", "GET", "/api/v1/broker/nd/info", "nd", _B, 2, accounts.get_broker_info),
    Route("add_sub_account", "POST", "/api/v1/broker/nd/account", "nd", _B, 3, accounts.add_sub_account),
    Route("get_sub_account", "GET", "/api/v1/broker/nd/account", "nd", _B, 2, accounts.get_sub_account),
    Route(
        "add_sub_account_api", "POST", "/api/v1/broker/nd/account/apikey", "nd", _B, 3,
        apikeys.add_sub_account_api,
    ),
    Route(
        "get_sub_account_api", "GET", "/api/v1/broker/nd/account/apikey", "nd", _B, 2,
        apikeys.get_sub_account_api,
    ),
    Route(
        "modify_sub_account_api", "POST", "/api/v1/broker/nd/account/update-apikey", "nd", _B, 3,
        apikeys.modify_sub_account_api,
    ),
    Route(
        "delete_sub_account_api", "DELETE", "/api/v1/broker/nd/account/apikey", "nd", _B, 3,
        apikeys.delete_sub_account_api,
    ),
    Route("transfer", "POST", "/api/v1/broker/nd/transfer", "nd", _B, 1, funds.transfer),
    Route(
        "get_transfer_history", "GET", "/api/v3/broker/nd/transfer/detail", "nd", _B, 1,
        funds.get_transfer_history,
    ),
    Route("get_deposit_list", "GET", "/api/v1/asset/ndbroker/deposit/list", "nd", _B, 10, funds.get_deposit_list),
    Route("get_deposit_detail", "GET", "/api/v3/broker/nd/deposit/detail", "nd", _B, 1, funds.get_deposit_detail),
    Route(
        "get_withdraw_detail", "GET", "/api/v3/broker/nd/withdraw/detail", "nd", _B, 1, funds.get_withdraw_detail
    ),
    Route(
        "get_spot_sub_account_detail", "GET", "/api/v1/sub-accounts/{subUserId}", "spot", "Management", 15,
        spot.get_spot_sub_account_detail, allowed=("trading",),
    ),
    Route(
        "get_spot_account_list", "GET", "/api/v1/accounts", "spot", "Spot", 5, spot.get_spot_account_list,
        allowed=("trading", "sub"),
    ),
    Route(
        "get_spot_ledger", "GET", "/api/v1/accounts/ledgers", "spot", "Management", 2, ledgers.get_account_ledgers,
        allowed=("trading", "sub"),
    ),
)  # fmt: skip
