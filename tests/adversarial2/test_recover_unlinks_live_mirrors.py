"""``StateGuard.recover`` rewrites the host's mirror with ``replace=True``, which deletes *every* per-process file
(``Mirror.record``: ``replace or not _running``), those of running workers included. A worker that carries on in the
operator's epoch (``recover --adopt`` on a live deployment, as documented) keeps ``fdatasync``ing its notes into an
unlinked file: the per-write durability the rollback check rests on is gone until it restarts, and losing the last
second of writes (``everysec`` AOF, host crash) again goes unnoticed and pays twice."""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, restore_state, snapshot_state
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import second_host, settle_with
from worker.recovery import Adoption, recover
from worker.store.epoch import StateLost


def test_a_rollback_after_an_adoption_on_the_same_host_goes_unnoticed_and_pays_twice(
    redis_url: str, key_prefix: str
) -> None:
    """Lost state is detected: after `recover --adopt` the running worker's notes go to an unlinked file; paid twice."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(duplicate_client_oid="accept"))  # worker: `unknown`
    try:
        onboard_with_a_key(rig, "before-adoption")  # the running worker has written to the exchange (noted)
        with rig.exchange.lock:
            legacy = rig.exchange.state.add_subaccount("legacyacct0002", rig.exchange.now_ms())
        cli = second_host(rig, same_host=True)  # `provisioner recover --adopt map.csv` on this host
        try:
            recover(cli, reason="migration", adoptions=[Adoption("migrated", legacy.uid)])
        finally:
            cli.close()
        rig.app.state.check()  # the running worker's scheduler: carries on in the operator's epoch, mirror refreshed

        ev = events_for("after-adoption", funding=(("USDT", "250"),))
        ref = rig.publish(ev["created"])[0]
        rig.settle(ref)  # the sub-account exists
        snapshot = snapshot_state(rig)
        rig.publish(ev["kyc"])
        rig.run(ref)  # intent noted (into the unlinked file), transfer sent and paid
        uid = rig.record(ref).sub_account.uid
        assert len(paid_to(rig, uid)) == 1

        # the host dies within the second: Redis restarts from an AOF missing its last second; the worker restarts
        restore_state(rig, snapshot)
        app = second_host(rig, same_host=True)
        try:
            try:
                app.intake.accept(ev["kyc"])  # re-sent by the hand-off or the upstream
                settle_with(rig, app, ref)
            except StateLost:
                return  # detected: what the guarantee asks for
            paid = paid_to(rig, uid)
            assert len(paid) == 1, f"the lost second went unnoticed and the line was paid {len(paid)} times"
        finally:
            app.close()
    finally:
        rig.close()
