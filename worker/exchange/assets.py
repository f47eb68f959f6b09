"""Money as it stands: sub-account deposits and withdrawals (ND endpoints) and a sub-account's balances
(the spot "Get sub-account Detail - Balance", read with the Special Account's *trading* key)."""

from __future__ import annotations

from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.errors import RequestValidationError
from worker.exchange.http import KucoinHttp
from worker.exchange.models import Deposit, SubAccountBalances, Withdrawal, list_of
from worker.exchange.requests import check_range

__all__ = ["Assets"]

_STATUSES = ("PROCESSING", "SUCCESS", "FAILURE")


class Assets:
    def __init__(self, http: KucoinHttp) -> None:
        self._http = http

    def deposits(
        self,
        *,
        currency: str | None = None,
        status: str | None = None,
        tx_hash: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> tuple[Deposit, ...]:
        """Get Deposit List — ``GET /api/v1/asset/ndbroker/deposit/list``; Broker pool, weight 10.

        Deposits of the broker's sub-accounts, newest first, at most ``limit`` (1–1000); no pagination.
        """
        endpoint = ENDPOINTS["get_deposit_list"]
        check_range(limit, 1, 1000, field="limit", endpoint=endpoint.name)
        if status is not None and status not in _STATUSES:
            raise RequestValidationError(
                f"status must be one of {', '.join(_STATUSES)}", field="status", endpoint=endpoint.name
            )
        query = [
            (k, v)
            for k, v in (
                ("currency", currency),
                ("status", status),
                ("hash", tx_hash),
                ("startTimestamp", _opt(start_ms)),
                ("endTimestamp", _opt(end_ms)),
                ("limit", str(limit)),
            )
            if v is not None
        ]
        return self._http.call(endpoint, list_of(Deposit), query=query)

    def deposit(self, *, currency: str, tx_hash: str) -> Deposit:
        """Get Deposit Detail — ``GET /api/v3/broker/nd/deposit/detail``; Broker pool, weight 1."""
        return self._http.call(
            ENDPOINTS["get_deposit_detail"],
            Deposit.model_validate,
            query=[("currency", currency), ("hash", tx_hash)],
        )

    def withdrawal(self, *, withdrawal_id: str) -> Withdrawal:
        """Get Withdraw Detail — ``GET /api/v3/broker/nd/withdraw/detail``; Broker pool, weight 1."""
        return self._http.call(
            ENDPOINTS["get_withdraw_detail"],
            Withdrawal.model_validate,
            query=[("withdrawalId", withdrawal_id)],
        )

    def sub_account_balances(self, *, uid: str) -> SubAccountBalances:
        """Get sub-account Detail - Balance — ``GET /api/v1/sub-accounts/{subUserId}`` on the spot host;
        Special Account *trading* key; Management pool, weight 15.

        Zero balances are left out (``includeBaseAmount=false``). For ND sub-accounts the uid is the
        ``subUserId`` (assumed: the ND API never exposes any other id).
        """
        return self._http.call(
            ENDPOINTS["get_sub_account_balance"],
            SubAccountBalances.model_validate,
            path_params={"subUserId": uid},
            query=[("includeBaseAmount", "false")],
        )


def _opt(value: int | None) -> str | None:
    return None if value is None else str(value)
