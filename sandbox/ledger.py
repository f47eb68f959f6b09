"""The spot ledger of every account ("Get Account Ledgers - Spot/Margin", docs/kucoin-api.md §8.3).

``Ledger.write`` records one movement of one wallet; ``sandbox.state`` calls it from the one place that moves
the money (transfer, deposit, trade), so the ledger and the balances cannot disagree. ``amount`` is positive and
``direction`` (``in``/``out``) gives the sign; ``balance`` is the wallet's balance right after the entry (KuCoin's
SDK calls the field deprecated and its old example shows ``"0"``: the worker must not rely on it). ``context``
is a compact JSON string, or ``""``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sandbox.values import IdFactory, fmt_amount

__all__ = ["BROKER_TRANSFER", "DEPOSIT", "TRADE_EXCHANGE", "Ledger", "LedgerEntry", "context_of"]

BROKER_TRANSFER = "BROKER_TRANSFER"
"""bizType of an ND transfer's entries: a guess; the SDK's and third-party typings list it (§6.13a, §8.3)."""
DEPOSIT = "DEPOSIT"
TRADE_EXCHANGE = "TRADE_EXCHANGE"


def context_of(fields: Mapping[str, str]) -> str:
    """A ledger ``context``: the fields as compact JSON (as in KuCoin's examples); ``""`` when there are none."""
    return json.dumps(dict(fields), separators=(",", ":")) if fields else ""


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One line of one account's ledger."""

    id: str
    uid: str
    currency: str
    amount: Decimal
    fee: Decimal
    balance: Decimal
    account_type: str
    biz_type: str
    direction: str
    created_at: int
    context: str

    def to_json(self) -> dict[str, Any]:
        """KuCoin's item shape (amounts as strings), without the uid."""
        return {
            "id": self.id,
            "currency": self.currency,
            "amount": fmt_amount(self.amount),
            "fee": fmt_amount(self.fee),
            "balance": fmt_amount(self.balance),
            "accountType": self.account_type,
            "bizType": self.biz_type,
            "direction": self.direction,
            "createdAt": self.created_at,
            "context": self.context,
        }


class Ledger:
    """Every entry of every account, in the order written, with an index by uid. Ids come from their own seeded
    stream, so writing entries does not change the uids, keys and orderIds a seed gives."""

    def __init__(self, seed: int) -> None:
        self._ids = IdFactory(seed, "sandbox-ledger")
        self.entries: list[LedgerEntry] = []
        self._by_uid: dict[str, list[LedgerEntry]] = {}

    def write(
        self,
        *,
        uid: str,
        wallet: str,
        currency: str,
        delta: Decimal,
        balance: Decimal,
        biz_type: str,
        now_ms: int,
        context: str,
    ) -> LedgerEntry:
        """Record that ``uid``'s ``wallet`` changed by ``delta`` (non-zero) and now holds ``balance``."""
        entry = LedgerEntry(
            id=self._ids.object_id(now_ms),
            uid=uid,
            currency=currency,
            amount=abs(delta),
            fee=Decimal(0),
            balance=balance,
            account_type=wallet,
            biz_type=biz_type,
            direction="in" if delta > 0 else "out",
            created_at=now_ms,
            context=context,
        )
        self.entries.append(entry)
        self._by_uid.setdefault(uid, []).append(entry)
        return entry

    def of(self, uid: str) -> list[LedgerEntry]:
        """One account's entries, oldest first (in the order written)."""
        return list(self._by_uid.get(uid, ()))
