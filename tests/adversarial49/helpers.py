"""Two worker groups on one Redis prefix and one simulator: the rig's app (group A) and a second app built from the
same environment with some settings changed (group B, "the other side of a rollout")."""

from __future__ import annotations

import uuid

from tests.core.harness import Rig, settings_for
from tests.core.test_lost_state import settle_with
from worker.bootstrap import App, build_app

__all__ = ["other_group", "settle_with"]


def other_group(rig: Rig, redis_url: str, key_prefix: str, **changed: str) -> App:
    """A worker group on the rig's Redis prefix, exchange and clock, on a host of its own (its own state mirror),
    whose environment is the rig's with ``changed`` on top (``settings_for`` applies the rig's test defaults)."""
    settings = settings_for(redis_url, key_prefix, **changed)
    settings = settings.model_copy(update={"state_dir": f"{settings.state_dir}-b-{uuid.uuid4().hex[:6]}"})
    return build_app(settings, transport=rig.transport, clock=rig.clock)
