"""Closing a customer: the last step of offboarding (or of a customer offboarded before it was created)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from handlers import steps
from handlers.commands import CloseCustomer, HoldOffboarding
from handlers.journal import JournalAction
from handlers.records import TransferPurpose, TransferStatus
from worker.provisioning.context import StepContext
from worker.provisioning.outbound import digest, failed, outcome

__all__ = ["close_customer", "hold_offboarding"]


def close_customer(cmd: CloseCustomer, ctx: StepContext) -> None:
    """Mark the record closed (intake refuses later events) and report what was moved back, by currency:
    ``swept`` what the exchange confirmed, ``unconfirmed`` what sweeps it could not confirm may have moved (a lost
    answer the ledger could not decide, one still PROCESSING); ``unread_wallets`` the wallets the broker API cannot
    read or move where money may remain (``CONTRACT``, futures, when a key of ours held the futures permission)."""
    now = ctx.now_ms()
    swept: dict[str, Decimal] = defaultdict(Decimal)
    maybe: dict[str, Decimal] = defaultdict(Decimal)
    for t in ctx.record.transfers.values():
        if t.purpose is TransferPurpose.SWEEP and t.status is TransferStatus.COMMITTED:
            swept[t.currency] += t.amount
        elif t.purpose is TransferPurpose.SWEEP and t.status is TransferStatus.UNCONFIRMED:
            maybe[t.currency] += t.amount
    totals = {currency: str(amount) for currency, amount in sorted(swept.items())}
    in_doubt = {currency: str(amount) for currency, amount in sorted(maybe.items())}
    unconfirmed = sorted(t.key for t in ctx.record.transfers.values() if t.status is TransferStatus.UNCONFIRMED)
    # what was still blocked (a key's update, a rotation) is moot once the customer is gone: closed customers are
    # never counted as blocked
    # the broker API neither reads nor moves a sub-account's futures wallet: where a key of ours let the customer
    # trade futures, money may be left there, and the upstream is told to check it with KuCoin
    unread = ["CONTRACT"] if ctx.record.noting_futures().futures_granted or cmd.futures_maybe else []
    moot = sorted(ctx.record.blocked)
    record = ctx.record.model_copy(
        update={"closed_at_ms": now, "events_at_close": tuple(sorted(ctx.seen_events)), "blocked": {}}
    )
    uid = record.sub_account.uid if record.sub_account else None
    ctx.settle(
        record,
        JournalAction.CUSTOMER_CLOSED,
        {
            "reason": cmd.reason,
            "swept": totals,
            "unconfirmed_sweeps": unconfirmed,
            "unread_wallets": unread,
            "blocks_cleared": moot,
        },
        outbound=[
            outcome(
                record,
                "customer.offboarded",
                # what it says names it: after a rollback past a close, a second close (money that came in after
                # the first, swept back) is a new outcome, not a copy of the one the upstream heard
                f"closed:{digest(uid, totals, in_doubt, unread)}",
                now,
                reason=cmd.reason,
                uid=uid,
                swept=totals,
                unconfirmed=in_doubt,
                unread_wallets=unread,
            )
        ],
        close=True,
    )


def hold_offboarding(cmd: HoldOffboarding, ctx: StepContext) -> None:
    """Block the sweep (dead letter, alert) until a human has freed the funds; a replay reads the balances again."""
    now = ctx.now_ms()
    record = ctx.record.model_copy(update={"balances": None})
    ctx.block(
        record,
        steps.SWEEP,
        cmd.reason,
        outbound=[failed(record, steps.SWEEP, cmd.reason, now)],
    )
