"""Decisions only a human can take, recorded like any other change (fenced, journaled as the operator's).

A transfer whose outcome could not be read (the balance matched neither "before" nor "after") is blocked for a
manual decision. Once on-call has checked with KuCoin, ``settle_transfer`` records the verdict: committed (the
money moved: recorded, never sent again) or not committed (sent again under a new clientOid at the next
reconcile).
"""

from __future__ import annotations

from decimal import Decimal

from handlers.records import Intent, TransferPurpose, TransferRecord, TransferStatus
from worker.bootstrap import App
from worker.store.customers import JournalEntry
from worker.store.lock import CustomerLock

__all__ = ["OperatorError", "settle_transfer"]


class OperatorError(Exception):
    """The decision does not apply (no such blocked transfer, customer busy)."""


def settle_transfer(app: App, ref: str, step: str, *, committed: bool, order_id: str | None, who: str) -> str:
    """Record an operator's verdict on the blocked transfer ``step`` (``fund:<line>`` or ``sweep``)."""
    lock = CustomerLock(app.redis, app.keys, ref, ttl_ms=app.settings.lock_ttl_ms)
    if not lock.acquire():
        raise OperatorError("the customer is being reconciled right now; try again in a moment")
    try:
        record = app.store.load(ref)
        if record is None:
            raise OperatorError("no such customer")
        blocked = record.blocked.get(step)
        if blocked is None or not blocked.manual:
            raise OperatorError(f"no transfer awaiting a manual decision at step {step!r}")
        remaining = {k: v for k, v in record.blocked.items() if k != step}
        now = int(app.clock() * 1000)
        if committed:
            if blocked.intent is None:
                raise OperatorError(f"the block at {step} kept no transfer details")
            entry = _committed_entry(blocked.intent, now, order_id)
            update: dict[str, object] = {"blocked": remaining, "transfers": {**record.transfers, entry.key: entry}}
            if entry.purpose is TransferPurpose.SWEEP:
                update |= {"sweep_round": record.sweep_round + 1, "balances": None}
            new = record.model_copy(update=update)
            action = "transfer.committed"
        else:
            counts = {**record.retry_counts, step: record.retry_counts.get(step, 0) + 1}
            update = {"blocked": remaining, "retry_counts": counts}
            if step == "sweep":
                update["balances"] = None  # sweep what is there now
            new = record.model_copy(update=update)
            action = "transfer.not_committed"
        assert lock.token is not None
        app.store.commit(
            lock.token,
            record,
            new,
            journal=[
                JournalEntry(
                    now,
                    action,
                    {"step": step, "order_id": order_id, "decided_by": who, "note": "operator decision"},
                    actor="operator",
                )
            ],
            now_ms=now,
        )
        app.due.schedule(ref, now)
        return action
    finally:
        lock.release()


def _committed_entry(intent: Intent, now: int, order_id: str | None) -> TransferRecord:
    d = intent.details
    return TransferRecord(
        key=str(d["key"]),
        purpose=TransferPurpose(d["purpose"]),
        client_oid=intent.token,
        currency=str(d["currency"]),
        amount=Decimal(str(d["amount"])),
        sub_wallet=str(d["sub_wallet"]),
        status=TransferStatus.COMMITTED,
        order_id=order_id,
        note="committed; confirmed by an operator",
        at_ms=now,
    )
