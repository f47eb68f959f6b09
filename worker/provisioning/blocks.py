"""Blocking a step: the exchange refused it for good, or only an operator can decide what happened."""

from __future__ import annotations

from typing import Any

from handlers.steps import StepId
from worker.provisioning.context import StepContext
from worker.provisioning.outbound import failed

__all__ = ["fail"]


def fail(ctx: StepContext, step: StepId, reason: str, *, manual: bool = False, **fields: Any) -> None:
    """Block ``step`` with ``reason`` and tell the upstream (``provisioning.failed``, with ``fields``). A ``manual``
    block keeps the pending intent for an operator's verdict (``provisioner customer settle-transfer``)."""
    now = ctx.now_ms()
    ctx.block(
        ctx.record,
        step,
        reason,
        manual=manual,
        outbound=[failed(ctx.record, step, reason, now, **fields)],
    )
