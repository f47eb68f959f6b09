"""Blocking a step: the exchange refused it for good, or only an operator can decide what happened."""

from __future__ import annotations

from typing import Any

from handlers.steps import StepId
from worker.provisioning.context import StepContext
from worker.provisioning.outbound import failed

__all__ = ["fail"]


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
