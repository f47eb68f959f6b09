"""An operator's retry takes back the refusals of funding lines whose cause can be fixed (``handlers.refusals``).

Run by the reconciler before planning, when the run is an operator's retry (``provisioner customer retry``, or a
replayed dead letter): the lines are removed from the record's transfers in one commit (journal
``funding.redecided``), and the planner then decides them as it would a new line — sent if the caps of the moment
allow it (the upstream is then told ``funding.completed`` after the ``funding.refused`` it heard), refused again
otherwise (a new ``funding.refused`` under a new event id).
"""

from __future__ import annotations

from handlers.journal import JournalAction
from handlers.refusals import redecidable, redecide
from worker.provisioning.context import StepContext

__all__ = ["redecide_refused"]


def redecide_refused(ctx: StepContext) -> list[str]:
    """Take back every redecidable refusal of ``ctx.record``; returns the line keys (none: nothing committed)."""
    keys = redecidable(ctx.record)
    if keys:
        causes = {k: ctx.record.transfers[k].note for k in keys}
        ctx.commit(
            redecide(ctx.record, keys), journal=[(JournalAction.FUNDING_REDECIDED, {"lines": keys, "reasons": causes})]
        )
    return keys
