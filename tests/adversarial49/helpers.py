"""Two worker groups on one Redis prefix and one simulator: the rig's app (group A) and a second app built from the
same environment with some settings changed (group B, "the other side of a rollout")."""

from __future__ import annotations

import uuid

from tests.core.harness import Rig, settings_for
from worker.bootstrap import App, build_app
from worker.provisioning.reconciler import StepsBlocked


def other_group(rig: Rig, redis_url: str, key_prefix: str, **changed: str) -> App:
    """A worker group on the rig's Redis prefix, exchange and clock, on a host of its own (its own state mirror),
    whose environment is the rig's with ``changed`` on top (``settings_for`` applies the rig's test defaults)."""
    settings = settings_for(redis_url, key_prefix, **changed)
    settings = settings.model_copy(update={"state_dir": f"{settings.state_dir}-b-{uuid.uuid4().hex[:6]}"})
    return build_app(settings, transport=rig.transport, clock=rig.clock)


def settle_with(rig: Rig, app: App, ref: str, *, rounds: int = 40) -> list[StepsBlocked]:
    """``Rig.settle`` for another app on the rig's exchange and clock (blocks collected, not raised)."""
    blocked = []
    for _ in range(rounds):
        app.due.cancel(ref)  # taken off the schedule as the scheduler's claim does: a run re-schedules it
        try:
            app.reconciler.run(ref)
        except StepsBlocked as exc:
            blocked.append(exc)
        wake = app.due.next_due_ms(ref)
        now = int(rig.clock() * 1000)
        if wake is None or wake - now > 3_600_000:
            return blocked
        if wake > now:
            rig.clock.advance_ms(wake - now)
    raise AssertionError("did not settle")
