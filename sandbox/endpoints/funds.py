"""Transfers and the read-only deposit/withdrawal endpoints (docs/kucoin-api.md §6.12-6.16).

Transfer: OUT moves (Special Account, ``accountType``) -> (``specialUid``, ``specialAccountType``), IN the
reverse (documented). The amount must be a positive decimal with at most the currency's precision (switch
``currency_precision``, default 8); the source wallet must hold it (else 400100 ``account.available.amount``,
a guess from ccxt's mapping). A repeated ``clientOid`` follows the switch ``duplicate_client_oid``: ``dedupe``
(same parameters -> the original orderId and no second movement; different parameters -> 400100 "clientOid
duplicated"), ``reject`` (always 400100 "clientOid duplicated") or ``accept`` (executes again). Funds move at
once; the status reads PROCESSING for ``transfer_processing_ms``, then SUCCESS. Each transfer that moves funds
writes one BROKER_TRANSFER ledger entry on each side (``context`` per switch ``ledger_context``).

A seeded share ``transfer_failure_share`` (decided per orderId) of accepted transfers fails afterwards: the
orderId is returned, nothing moves, no ledger entry is written, and the detail reads PROCESSING for
``transfer_processing_ms``, then FAILURE with a ``reason``. Its clientOid stays used: ``dedupe`` answers the
failed orderId to an equal repeat, ``reject`` refuses any repeat, ``accept`` executes the repeat (which may
succeed).

Deposits and withdrawals come from fixtures (``SandboxConfig.deposits``/``withdrawals``) plus deposits
recorded by ``POST /sandbox/v1/credit`` with ``"deposit": true``. The detail endpoints exclude the broker's own
account (documented); the list includes it (its example row is the broker's uid).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.config import WALLETS
from sandbox.context import Context
from sandbox.errors import business
from sandbox.state import fmt_amount

__all__ = ["get_deposit_detail", "get_deposit_list", "get_transfer_history", "get_withdraw_detail", "transfer"]

DUPLICATE_CLIENT_OID = "clientOid duplicated"
NOT_OUR_SPECIAL_UID = "specialUid is not a sub-account of this broker"

_DEPOSIT_DEFAULTS: dict[str, Any] = {
    "uid": 0, "hash": "", "address": "", "memo": "", "amount": "0", "fee": "0", "currency": "USDT",
    "isInner": False, "walletTxId": "", "status": "SUCCESS", "remark": "", "chain": "trx",
    "createdAt": 0, "updatedAt": 0,
}  # fmt: skip
_WITHDRAW_DEFAULTS: dict[str, Any] = {
    "id": "", "chain": "trx", "walletTxId": "", "uid": 0, "updatedAt": 0, "amount": "0", "memo": "",
    "fee": "0", "address": "", "remark": "", "isInner": False, "currency": "USDT", "status": "SUCCESS",
    "createdAt": 0,
}  # fmt: skip


def transfer(ctx: Context) -> dict[str, Any]:
    """POST /api/v1/broker/nd/transfer — move funds between the Special Account and a sub-account; weight 1."""
    body = ctx.body
    currency = body.required("currency")
    precision = ctx.config.currency_precision.get(currency)
    if precision is None:
        raise business(f"currency {currency} is not supported")
    amount = body.amount("amount", precision=precision)
    direction = body.one_of("direction", ("OUT", "IN"))
    account_type = body.one_of("accountType", WALLETS)
    special_uid = body.required("specialUid")
    special_account_type = body.one_of("specialAccountType", WALLETS)
    client_oid = body.required("clientOid", max_len=128)
    request: dict[str, Any] = {
        "currency": currency,
        "amount": amount,
        "direction": direction,
        "account_type": account_type,
        "special_uid": special_uid,
        "special_account_type": special_account_type,
    }
    if special_uid not in ctx.state.subaccounts:
        raise business(NOT_OUR_SPECIAL_UID)
    previous = ctx.state.transfers_with_client_oid(client_oid)
    policy = ctx.config.duplicate_client_oid
    if previous and policy != "accept":
        if policy == "dedupe" and previous[0].same_request(request):
            return {"orderId": previous[0].order_id}
        raise business(DUPLICATE_CLIENT_OID)
    record = ctx.state.transfer(
        client_oid=client_oid,
        currency=currency,
        amount=amount,
        direction=direction,
        account_type=account_type,
        special_uid=special_uid,
        special_account_type=special_account_type,
        now_ms=ctx.now_ms,
        processing_ms=ctx.config.transfer_processing_ms,
        failure_share=ctx.config.transfer_failure_share,
        ledger_context=ctx.config.ledger_context,
        credit_on_completion=ctx.config.transfer_credit == "on_completion",
    )
    return {"orderId": record.order_id}


def get_transfer_history(ctx: Context) -> dict[str, Any]:
    """GET /api/v3/broker/nd/transfer/detail?orderId= — one transfer record (integer uids); weight 1."""
    record = ctx.state.transfers.get(ctx.query.required("orderId"))
    if record is None:
        raise business("orderId does not exist")
    (from_uid, from_type), (to_uid, to_type) = record.source, record.target
    return {
        "orderId": record.order_id,
        "currency": record.currency,
        "amount": fmt_amount(record.amount),
        "fromUid": int(from_uid),
        "fromAccountType": from_type,
        "fromAccountTag": "DEFAULT",
        "toUid": int(to_uid),
        "toAccountType": to_type,
        "toAccountTag": "DEFAULT",
        "status": record.status(ctx.now_ms),
        "reason": record.reason(ctx.now_ms),
        "createdAt": record.created_at,
    }


def _records(fixtures: tuple[Mapping[str, Any], ...], defaults: dict[str, Any]) -> list[dict[str, Any]]:
    result = []
    for fixture in fixtures:
        record = {**defaults, **fixture}
        record["uid"] = int(record["uid"])
        result.append(record)
    return result


def _deposits(ctx: Context) -> list[dict[str, Any]]:
    return _records(ctx.config.deposits, _DEPOSIT_DEFAULTS) + [dict(d) for d in ctx.state.deposits]


def get_deposit_list(ctx: Context) -> list[dict[str, Any]]:
    """GET /api/v1/asset/ndbroker/deposit/list — filtered deposits, newest first, plain array; weight 10."""
    query = ctx.query
    currency = query.string("currency", required=False)
    status = query.choice("status", ("PROCESSING", "SUCCESS", "FAILURE"), required=False)
    tx_hash = query.string("hash", required=False)
    start = query.integer("startTimestamp", default=0, minimum=0)
    end = query.integer("endTimestamp", default=2**63 - 1, minimum=0)
    limit = query.integer("limit", default=1000, minimum=1, maximum=1000)
    rows = [
        d
        for d in _deposits(ctx)
        if (currency is None or d["currency"] == currency)
        and (status is None or d["status"] == status)
        and (tx_hash is None or d["hash"] == tx_hash)
        and start <= d["createdAt"] <= end
    ]
    rows.sort(key=lambda d: d["createdAt"], reverse=True)
    return rows[:limit]


def get_deposit_detail(ctx: Context) -> dict[str, Any]:
    """GET /api/v3/broker/nd/deposit/detail?currency=&hash= — one sub-account deposit; weight 1."""
    currency = ctx.query.required("currency")
    tx_hash = ctx.query.required("hash")
    broker = int(ctx.state.broker.uid)
    for record in _deposits(ctx):
        if record["currency"] == currency and record["hash"] == tx_hash and record["uid"] != broker:
            return record
    raise business("deposit does not exist")


def get_withdraw_detail(ctx: Context) -> dict[str, Any]:
    """GET /api/v3/broker/nd/withdraw/detail?withdrawalId= — one sub-account withdrawal (fixtures); weight 1."""
    withdrawal_id = ctx.query.required("withdrawalId")
    broker = int(ctx.state.broker.uid)
    for record in _records(ctx.config.withdrawals, _WITHDRAW_DEFAULTS):
        if record["id"] == withdrawal_id and record["uid"] != broker:
            return record
    raise business("withdrawal does not exist")
