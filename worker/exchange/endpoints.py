"""The catalogue of exchange endpoints the client calls: method, path, host, pool, weight, write or read.

Weights and pools are KuCoin's (docs/kucoin-api.md §4.3, §6 and §8); the KYC endpoints have no published weight,
so we count them as 1. One table, so the rate limiter, the metrics and the docs read the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ENDPOINTS", "Endpoint", "Host", "KeyRole"]


class Host(StrEnum):
    BROKER = "broker"
    SPOT = "spot"


class KeyRole(StrEnum):
    MANAGEMENT = "management"
    """The ND-broker management key, sent with the partner headers."""
    TRADING = "trading"
    """The Special Account's trading key (asset reads); no partner headers."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    host: Host
    pool: str
    weight: int
    write: bool
    key: KeyRole = KeyRole.MANAGEMENT


def _nd(name: str, method: str, path: str, weight: int, *, write: bool = False) -> Endpoint:
    return Endpoint(name, method, path, Host.BROKER, "Broker", weight, write)


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        _nd("add_sub_account", "POST", "/api/v1/broker/nd/account", 3, write=True),
        _nd("get_sub_accounts", "GET", "/api/v1/broker/nd/account", 2),
        _nd("add_api_key", "POST", "/api/v1/broker/nd/account/apikey", 3, write=True),
        _nd("get_api_keys", "GET", "/api/v1/broker/nd/account/apikey", 2),
        _nd("modify_api_key", "POST", "/api/v1/broker/nd/account/update-apikey", 3, write=True),
        _nd("delete_api_key", "DELETE", "/api/v1/broker/nd/account/apikey", 3, write=True),
        _nd("transfer", "POST", "/api/v1/broker/nd/transfer", 1, write=True),
        _nd("get_transfer", "GET", "/api/v3/broker/nd/transfer/detail", 1),
        _nd("get_deposit_list", "GET", "/api/v1/asset/ndbroker/deposit/list", 10),
        _nd("get_deposit_detail", "GET", "/api/v3/broker/nd/deposit/detail", 1),
        _nd("get_withdraw_detail", "GET", "/api/v3/broker/nd/withdraw/detail", 1),
        _nd("get_broker_info", "GET", "/api/v1/broker/nd/info", 2),
        _nd("get_rebate_url", "GET", "/api/v1/broker/nd/rebase/download", 3),
        _nd("submit_kyc", "POST", "/api/kyc/ndBroker/proxyClient/submit", 1, write=True),
        _nd("get_kyc_status", "GET", "/api/kyc/ndBroker/proxyClient/status/list", 1),
        _nd("get_kyc_status_page", "GET", "/api/kyc/ndBroker/proxyClient/status/page", 1),
        Endpoint(
            "get_sub_account_balance",
            "GET",
            "/api/v1/sub-accounts/{subUserId}",
            Host.SPOT,
            "Management",
            15,
            write=False,
            key=KeyRole.TRADING,
        ),
        Endpoint(
            "get_account_ledgers",
            "GET",
            "/api/v1/accounts/ledgers",
            Host.SPOT,
            "Management",
            2,
            write=False,
            key=KeyRole.TRADING,
        ),
    )
}
"""Every endpoint by name. ``get_sub_account_balance`` is KuCoin's "Get sub-account Detail - Balance";
``get_account_ledgers`` is "Get Account Ledgers - Spot/Margin" (pool and weight from KuCoin's docs-new page and
the universal SDK, unconfirmed for the ND Special Account: docs/kucoin-api.md §8.3)."""
