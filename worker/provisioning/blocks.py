"""Blocking a step: the exchange refused it for good, only an operator can decide what happened, or a write found
not done on every attempt for too long is not written again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from handlers.intents import Intent, TransferIntent, TransferPurpose
from handlers.journal import JournalAction
from handlers.planner import retry_overdue
from handlers.records import CustomerRecord, NotDone
from handlers.steps import StepId
from worker.provisioning.context import StepContext
from worker.provisioning.outbound import failed
from worker.store.customers import OutboundEvent

__all__ = ["fail", "not_done"]


def fail(
    ctx: StepContext, step: StepId, reason: str, *, manual: bool = False, keep_intent: bool = False, **fields: Any
) -> None:
    """Block ``step`` with ``reason`` and tell the upstream (``provisioning.failed``, with ``fields``). A ``manual``
    block keeps the pending intent for an operator's verdict (``provisioner customer settle-transfer``); one with
    ``keep_intent`` keeps it too, but an operator's retry lifts it like any other (the write is sent again)."""
    now = ctx.now_ms()
    ctx.block(
        ctx.record,
        step,
        reason,
        manual=manual,
        keep_intent=keep_intent,
        outbound=[failed(ctx.record, step, reason, now, **fields)],
    )


def not_done(
    ctx: StepContext,
    record: CustomerRecord,
    action: JournalAction,
    detail: dict[str, Any],
    *,
    outbound: Sequence[OutboundEvent] = (),
    again_as: str | None = None,
) -> None:
    """The pending write was found not done (``record``: what the step learnt meanwhile): settle it with
    ``action``, remembering its first moment (``CustomerRecord.not_done``), so that the step written again keeps
    the write's age — unless its attempts have failed for the bound (``planner.retry_overdue``): then its step is
    blocked for an operator in the next commit (not manual: a retry writes it again, from a new first moment).
    ``again_as``: the token the step writes it again under, when not the same (a sweep's next round). Nothing
    pending: settled alone."""
    pending = record.pending
    if pending is None:
        ctx.settle(record, action, detail, outbound=outbound)
        return
    overdue = retry_overdue(pending, ctx.now_ms(), ctx.services.policy)
    if overdue is not None and _money_in(pending):
        # every send of a funding line unanswered for the bound, and the ledger shows none of them: its silence is
        # no proof the money did not move (a ledger slower than its setting) — an operator decides, the line
        # counted in doubt meanwhile (a manual block keeping the intent), never a line taken for unpaid
        ctx.record = record
        step, reason = overdue
        fail(ctx, step, reason, manual=True)
        return
    undone = NotDone.of(pending, ctx.now_ms(), token=again_as)
    ctx.settle(record.model_copy(update={"not_done": undone}), action, detail, outbound=outbound)
    if overdue is not None:
        ctx.record = ctx.record.model_copy(update={"not_done": None})  # committed with the block
        step, reason = overdue
        fail(ctx, step, reason)


def _money_in(intent: Intent) -> bool:
    """Whether ``intent`` is a funding line's transfer (money to the customer, counted on its caps)."""
    return isinstance(intent.details, TransferIntent) and intent.details.purpose is TransferPurpose.FUND
