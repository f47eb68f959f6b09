"""What the exchange itself shows about our customers, read through its API: the input of ``provisioner verify
--exchange`` (the same shape as the simulator's ``/sandbox/v1/state``, so one checker serves both).

Read, with the management key: every sub-account of the broker (kept: those named like ours or adopted), every
key of each (the listing masks IP addresses: ``ipWhitelistMasked`` says so), and Get Transfer History of every
orderId our records hold. With the Special Account's trading key: each currency's ledger over the period, in
both directions, whose broker-transfer entries bring in transfers our records do not know (an orderId we never
recorded, looked up for its sub-account; or a clientOid); and the balances of the sub-accounts of offboarded
customers (which must be empty). The view says what it could not establish (``unattributed``: ledger entries
without any id, with their total per currency), so a checker can report it instead of assuming.

Cost: one Get SubAccount page per 100 sub-accounts, one key listing per sub-account of ours (weight 2), one
history read per transfer (weight 1), the ledger in 24 h windows (Management pool, weight 2 per page), one
balance read per offboarded customer (weight 15).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from handlers.naming import Naming
from handlers.records import CustomerRecord
from worker.exchange import ExchangeClient, ExchangeError
from worker.exchange.models import AccountType

__all__ = ["exchange_snapshot", "unmask"]

_NOT_TRANSFERS = ("deposit", "withdraw", "exchange", "trade", "bonus", "rebate", "fee", "margin", "loan", "earn")


def exchange_snapshot(
    exchange: ExchangeClient,
    naming: Naming,
    customers: Iterable[str],
    records: Callable[[str], CustomerRecord | None],
    *,
    currencies: Iterable[str],
    since_ms: int,
    until_ms: int,
    offboarded: Iterable[str] = (),
) -> dict[str, Any]:
    """The exchange's view of ``customers`` (upstream ids) in the simulator's state shape, plus ``unattributed``.
    Raises ``ExchangeError`` when a read fails (a verification must not pass on missing data)."""
    customers = list(customers)
    by_ref = {naming.customer_ref(c): c for c in customers}
    wanted_names = {name for c in customers for name in naming.account_names(c)}
    adopted_uids = {
        r.sub_account.uid
        for r in (records(ref) for ref in by_ref)
        if r is not None and r.sub_account is not None and r.adopted_at_ms is not None
    }
    subs = [
        s
        for s in exchange.sub_accounts.iter_all()
        if s.account_name in wanted_names or naming.is_account_name(s.account_name) or s.uid in adopted_uids
    ]
    closed_customers = set(offboarded)
    sub_rows: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    for sub in subs:
        owner = next((c for c in customers if sub.account_name in _names(naming, c)), None)
        balances: dict[str, dict[str, str]] = {"MAIN": {}, "TRADE": {}}
        if owner is not None and owner in closed_customers:
            read = exchange.assets.sub_account_balances(uid=sub.uid)
            for wallet in (AccountType.MAIN, AccountType.TRADE):
                balances[wallet.value] = {c: str(b.balance) for c, b in read.wallet(wallet).items() if b.balance}
            for row in (*read.trade_hf_accounts, *read.margin_accounts):
                if row.balance:
                    balances.setdefault("OTHER", {})[row.currency] = str(row.balance)
        sub_rows.append(
            {"uid": sub.uid, "accountName": sub.account_name, "createdAt": sub.created_at, "balances": balances}
        )
        recorded = _recorded_ips(records, naming, owner)
        for key in exchange.api_keys.list(uid=sub.uid):
            keys.append(
                {
                    "uid": key.uid,
                    "apiKey": key.api_key,
                    "label": key.label,
                    "permissions": [p.capitalize() for p in key.permissions],
                    "ipWhitelist": unmask(key.ip_whitelist, recorded.get(key.api_key, ())),
                    "ipWhitelistMasked": any("*" in ip for ip in key.ip_whitelist),
                    "createdAt": key.created_at,
                    "deletedAt": None,
                }
            )
    ours = {s["uid"] for s in sub_rows}
    transfers, unattributed = _transfers(
        exchange,
        by_ref=by_ref,
        records=records,
        ours=ours,
        currencies=currencies,
        since_ms=since_ms,
        until_ms=until_ms,
    )
    return {
        "subAccounts": sub_rows,
        "apiKeys": keys,
        "transfers": transfers,
        "unattributed": unattributed,
        "source": "exchange",
    }


def unmask(listed: Iterable[str], recorded: Iterable[str]) -> list[str]:
    """The exchange lists whitelisted IPs masked (``203.**.10``, ``2606:**:1111``): where our record's whitelist
    matches the masks one for one (same first and last part), the recorded addresses; else the listing as it is (a
    mismatch the checker reports). The API shows no more than this."""
    shown, ours = sorted(listed), sorted(recorded)
    if len(shown) != len(ours):
        return shown
    left = list(shown)
    matched: list[str] = []
    for ip in ours:
        hit = next((m for m in left if m == ip or _masks(m, ip)), None)
        if hit is None:
            return shown
        left.remove(hit)
        matched.append(ip)
    return matched


def _masks(masked: str, ip: str) -> bool:
    """Whether ``masked`` (the listing's form: first part, ``**``, last part) can be ``ip``, IPv4 or IPv6."""
    if "*" not in masked or ("." not in ip and ":" not in ip):
        return False
    head, _, tail = masked.partition("**")
    return ip.startswith(head) and ip.endswith(tail) and len(ip) > len(head) + len(tail)


def _recorded_ips(
    records: Callable[[str], CustomerRecord | None], naming: Naming, owner: str | None
) -> dict[str, tuple[str, ...]]:
    record = records(naming.customer_ref(owner)) if owner is not None else None
    return {k.api_key: k.ip_whitelist for k in record.keys} if record is not None else {}


def _names(naming: Naming, customer: str) -> set[str]:
    return naming.account_names(customer)


def _transfers(
    exchange: ExchangeClient,
    *,
    by_ref: Mapping[str, str],
    records: Callable[[str], CustomerRecord | None],
    ours: set[str],
    currencies: Iterable[str],
    since_ms: int,
    until_ms: int,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Transfers with our sub-accounts: every orderId our records hold, and every other one the Special Account's
    ledger shows going to or coming from one of them."""
    known: dict[str, str | None] = {}  # orderId → clientOid
    for ref in by_ref:
        record = records(ref)
        if record is None:
            continue
        for transfer in record.transfers.values():
            if transfer.order_id is not None:
                known[transfer.order_id] = transfer.client_oid
    rows: dict[str, dict[str, Any]] = {}
    for order_id, client_oid in known.items():
        rows[order_id] = _history(exchange, order_id, client_oid, ours)
    unattributed: dict[str, Decimal] = defaultdict(Decimal)
    for currency in currencies:
        for direction in ("out", "in"):
            entries = exchange.assets.ledger_entries(
                currency=currency, direction=direction, start_ms=since_ms, end_ms=until_ms
            )
            for entry in entries:
                kind = entry.biz_type.lower()
                if "transfer" not in kind and any(word in kind for word in _NOT_TRANSFERS):
                    continue
                fields = entry.context_fields()
                listed = fields.get("orderId")
                if listed is None:
                    unattributed[f"{currency}:{direction}"] += abs(entry.amount)
                    continue
                if listed in rows:
                    continue
                try:
                    row = _history(exchange, listed, fields.get("clientOid"), ours)
                except ExchangeError:
                    unattributed[f"{currency}:{direction}"] += abs(entry.amount)
                    continue
                if row["direction"] != "OTHER":
                    rows[listed] = row
    return list(rows.values()), {k: str(v) for k, v in unattributed.items()}


def _history(exchange: ExchangeClient, order_id: str, client_oid: str | None, ours: set[str]) -> dict[str, Any]:
    """One transfer as Get Transfer History shows it; its direction from which side is one of our sub-accounts
    (``OTHER`` when neither is)."""
    detail = exchange.transfers.get(order_id=order_id)
    to_uid, from_uid = str(detail.to_uid), str(detail.from_uid)
    direction = "OUT" if to_uid in ours else "IN" if from_uid in ours else "OTHER"
    return {
        "orderId": order_id,
        "clientOid": client_oid,
        "currency": detail.currency,
        "amount": str(detail.amount),
        "direction": direction,
        "specialUid": to_uid if direction == "OUT" else from_uid,
        "status": str(detail.status),
        "createdAt": detail.created_at,
    }
