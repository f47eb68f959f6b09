"""A running worker that finds the state in Redis lost stops everyone instead of starting over."""

from __future__ import annotations

from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig


def test_a_worker_that_finds_its_state_lost_halts_everyone_and_repeats_nothing(redis_url: str, key_prefix: str) -> None:
    """Redis loses every key under a live worker (a restart without persistence): the scheduler's check finds the
    epoch gone, sets the halt for every worker, raises provisioner_state_lost and stops; events re-published
    meanwhile are not acted on, so no second sub-account or key appears."""
    with WorkerRig(redis_url, key_prefix) as rig:
        ev = events_for("w-lost")
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["kyc"])
        rig.wait_for(lambda: len(rig.live_keys()) == 1, what="a key")
        r = rig.runtime.app.redis
        for key in r.scan_iter(f"{key_prefix}:*", count=1000):
            r.delete(key)
        rig.wait_for(lambda: rig.runtime.state_watch.halted, what="the halt")
        assert r.hget(f"{key_prefix}:state", "halted"), "every worker is told"
        assert rig.metric("provisioner_state_lost", kind="missing") == 1
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["kyc"])
        rig.wait_for(
            lambda: rig.metric("provisioner_messages_total", actor="handle_event", outcome="error") >= 1,
            what="a refusal",
        )
        state = rig.exchange.state_snapshot()
        assert len(state["subAccounts"]) == 1
        assert len([k for k in state["apiKeys"] if k["deletedAt"] is None]) == 1
