"""Finding out, once, what the real exchange does with a repeated transfer clientOid — and what its ledger shows.

KuCoin documents neither (``docs/kucoin-api.md`` §6.12, §6.13a), and the safe way to settle a lost transfer depends
on both. ``probe_client_oid`` answers them against the configured exchange at the smallest amount:

1. it finds or creates the probe sub-account (its name is derived from the name secret, like our customers'
   names, but of another shape: it is never taken for a customer's);
2. it transfers ``amount`` into it under a fresh clientOid, then sends the very same request again: the same
   orderId means ``dedupe``, a "clientOid duplicated" refusal ``reject``, a second orderId ``accept``;
3. it reads both transfers' history and the Special Account's ledger until the transfer shows, which tells what
   the ledger's ``context`` carries (``client_oid``, ``order_id`` or ``none``) and how long it lagged;
4. it moves the probe sub-account's whole balance of the currency back.

Cost: one sub-account (created on the first probe and kept: KuCoin cannot delete sub-accounts), two or three
transfers of ``amount`` (all moved back), a few ledger reads; nothing is left in the probe sub-account.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from handlers.naming import Naming
from worker.exchange import DuplicateClientOidError, ExchangeClient, PermanentError
from worker.exchange.models import AccountType, Direction, TransferOrder

__all__ = ["ProbeReport", "probe_client_oid"]


@dataclass
class ProbeReport:
    behaviour: str
    """``dedupe``, ``reject``, ``accept`` or ``unknown`` (the repeat was refused for another reason)."""
    detail: str
    ledger_context: str = "unknown"
    """What a broker transfer's ledger ``context`` carried: ``client_oid``, ``order_id``, ``none``, or ``unknown``
    (the entry did not show within the wait)."""
    ledger_lag_ms: int | None = None
    sub_account: str = ""
    transfers: list[str] = field(default_factory=list)
    moved_back: Decimal = Decimal(0)

    def settings(self) -> dict[str, str]:
        """The settings this probe recommends."""
        recommended = {"PROVISIONER_CLIENT_OID_BEHAVIOUR": self.behaviour}
        if self.ledger_lag_ms is not None:
            recommended["PROVISIONER_LEDGER_LAG_MS"] = str(max(10_000, 3 * self.ledger_lag_ms))
        return recommended


def probe_client_oid(
    exchange: ExchangeClient,
    naming: Naming,
    *,
    currency: str,
    amount: Decimal,
    broker_wallet: str = "MAIN",
    sub_wallet: str = "MAIN",
    ledger_wait_s: float = 120.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> ProbeReport:
    """Run the probe (see the module docstring). Raises ``ExchangeError`` if the exchange refuses a step other than
    the repeat itself (e.g. the amount is below its minimum: try a larger one)."""
    uid = _probe_sub_account(exchange, naming)
    client_oid = "p" + uuid.uuid4().hex

    def send() -> TransferOrder:
        return exchange.transfers.transfer(
            currency=currency,
            amount=amount,
            direction=Direction.OUT,
            account_type=AccountType(broker_wallet),
            special_uid=uid,
            special_account_type=AccountType(sub_wallet),
            client_oid=client_oid,
        )

    sent_at = int(clock() * 1000)
    first = send()
    report = ProbeReport("unknown", "", sub_account=uid, transfers=[first.order_id])
    try:
        second = send()
    except DuplicateClientOidError as exc:
        report.behaviour, report.detail = "reject", f"the repeat was refused as a duplicate: {exc.message}"
    except PermanentError as exc:
        report.detail = (
            f"the repeat was refused for another reason: {exc}; keep PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown"
        )
    else:
        if second.order_id == first.order_id:
            report.behaviour, report.detail = "dedupe", f"the repeat answered the first orderId {first.order_id}"
        else:
            report.transfers.append(second.order_id)
            report.behaviour = "accept"
            report.detail = f"the repeat executed again: orders {first.order_id} and {second.order_id}"
    report.ledger_context, report.ledger_lag_ms = _ledger(
        exchange,
        currency=currency,
        amount=amount,
        order_id=first.order_id,
        client_oid=client_oid,
        sent_at=sent_at,
        wait_s=ledger_wait_s,
        clock=clock,
        sleep=sleep,
    )
    report.moved_back = _move_back(exchange, uid, currency, broker_wallet, sub_wallet)
    return report


def _probe_sub_account(exchange: ExchangeClient, naming: Naming) -> str:
    name = naming.probe_account_name()
    for sub in exchange.sub_accounts.iter_all():
        if sub.account_name == name:
            return sub.uid
    return exchange.sub_accounts.add(account_name=name).uid


def _ledger(
    exchange: ExchangeClient,
    *,
    currency: str,
    amount: Decimal,
    order_id: str,
    client_oid: str,
    sent_at: int,
    wait_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[str, int | None]:
    """Poll the Special Account's ledger until an entry of our amount shows; what its context carries, and when."""
    deadline = clock() + wait_s
    while True:
        now = int(clock() * 1000)
        entries = exchange.assets.ledger_entries(
            currency=currency, direction="out", start_ms=sent_at - 60_000, end_ms=now
        )
        for entry in entries:
            if abs(entry.amount) != amount or entry.created_at < sent_at - 60_000:
                continue
            fields = entry.context_fields()
            if fields.get("clientOid") == client_oid:
                return "client_oid", max(0, now - sent_at)
            if fields.get("orderId") == order_id:
                return "order_id", max(0, now - sent_at)
        if any(abs(e.amount) == amount and not e.context_fields() for e in entries):
            return "none", max(0, now - sent_at)
        if clock() >= deadline:
            return "unknown", None
        sleep(2.0)


def _move_back(exchange: ExchangeClient, uid: str, currency: str, broker_wallet: str, sub_wallet: str) -> Decimal:
    balances = exchange.assets.sub_account_balances(uid=uid)
    row = balances.wallet(AccountType(sub_wallet)).get(currency)
    available = row.available if row is not None else Decimal(0)
    if available > 0:
        exchange.transfers.transfer(
            currency=currency,
            amount=available,
            direction=Direction.IN,
            account_type=AccountType(broker_wallet),
            special_uid=uid,
            special_account_type=AccountType(sub_wallet),
            client_oid="p" + uuid.uuid4().hex,
        )
    return available
