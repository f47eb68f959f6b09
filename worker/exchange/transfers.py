"""Transfers between the broker's Special Account and its sub-accounts, and their status."""

from __future__ import annotations

from decimal import Decimal

from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.errors import RequestValidationError
from worker.exchange.http import KucoinHttp
from worker.exchange.models import AccountType, Direction, TransferDetail, TransferOrder
from worker.exchange.requests import TransferRequest, build

__all__ = ["Transfers"]


class Transfers:
    def __init__(self, http: KucoinHttp) -> None:
        self._http = http

    def transfer(
        self,
        *,
        currency: str,
        amount: Decimal,
        direction: Direction,
        account_type: AccountType,
        special_uid: str,
        special_account_type: AccountType,
        client_oid: str,
    ) -> TransferOrder:
        """Transfer — ``POST /api/v1/broker/nd/transfer``; management key; Broker pool, weight 1.

        ``OUT`` moves ``amount`` from the Special Account's ``account_type`` wallet to sub-account
        ``special_uid``'s ``special_account_type`` wallet; ``IN`` the reverse. What the exchange does with a
        repeated ``client_oid`` is not documented. Raises ``RequestValidationError`` for a non-positive amount,
        a clientOid longer than 128 characters or a malformed currency.
        """
        if not isinstance(amount, Decimal):
            raise RequestValidationError("amount must be a Decimal", field="amount", endpoint="transfer")
        request = build(
            TransferRequest,
            "transfer",
            currency=currency,
            amount=amount,
            direction=direction,
            account_type=account_type,
            special_uid=special_uid,
            special_account_type=special_account_type,
            client_oid=client_oid,
        )
        return self._http.call(ENDPOINTS["transfer"], TransferOrder.model_validate, body=request.body())

    def get(self, *, order_id: str) -> TransferDetail:
        """Get Transfer History — ``GET /api/v3/broker/nd/transfer/detail``; Broker pool, weight 1.

        Despite its name it returns the one transfer ``order_id`` names.
        """
        if not order_id:
            raise RequestValidationError("orderId is required", field="order_id", endpoint="get_transfer")
        return self._http.call(ENDPOINTS["get_transfer"], TransferDetail.model_validate, query=[("orderId", order_id)])
