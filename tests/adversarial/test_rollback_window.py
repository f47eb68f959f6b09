"""A rollback within the mirror's lag: the host's mirror of the write counter is refreshed at most once a second by
the scheduler (``StateGuard.check``), not before an exchange write, so losing the last second of writes (``everysec``
AOF on a host crash, which ``worker.store.epoch`` says it detects) goes unnoticed by the restarted worker."""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, restore_state, topup
from tests.core.harness import Rig
from tests.core.test_lost_state import second_host, settle_with
from worker.store.epoch import StateLost


def test_losing_the_last_second_of_writes_is_not_detected_and_pays_twice(redis_url: str, key_prefix: str) -> None:
    """Lost state is detected: losing the last second of writes (everysec, host crash) goes unnoticed; paid twice."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(duplicate_client_oid="accept"))
    try:
        ref, uid = onboard_with_a_key(rig, "last-second")
        r = rig.app.redis
        rig.app.state.check()  # the scheduler's periodic mirror refresh, just before the last second
        snapshot = {k: r.dump(k) for k in r.scan_iter(f"{rig.settings.key_prefix}:*", count=1000)}
        event = topup("last-second", "topup", 5, [("USDT", "250")])
        rig.publish(event)
        rig.settle(ref)
        assert len(paid_to(rig, uid)) == 1

        # the host dies: Redis restarts from an AOF missing its last second; the worker restarts on the same host
        restore_state(rig, snapshot)
        app = second_host(rig, same_host=True)
        try:
            try:
                app.intake.accept(event)  # the publisher's hand-off (also lost) or the upstream sends it again
                settle_with(rig, app, ref)
            except StateLost:
                return  # detected: what the guarantee asks for
            paid = paid_to(rig, uid)
            assert len(paid) == 1, f"the lost second went unnoticed and the line was paid {len(paid)} times"
        finally:
            app.close()
    finally:
        rig.close()
