"""`provisioner recover` (e.g. `--adopt` for a migration, on a healthy deployment) while workers run: each running
worker sees its epoch "changed", takes it for a lost state and halts the whole deployment, the new epoch included."""

from __future__ import annotations

from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import second_host
from worker.recovery import Adoption, recover
from worker.runtime.state_watch import StateWatch
from worker.store.epoch import StateLost


def test_an_adoption_on_a_live_deployment_halts_every_worker(redis_url: str, key_prefix: str) -> None:
    """Recovery while a worker runs: the running worker halts the epoch the operator's recover just created."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("live-adopt", funding=())
        ref = rig.publish(ev["created"])[0]
        rig.settle(ref)
        watch = StateWatch(lambda: rig.app.state)  # the running worker's scheduler thread
        watch.check()
        assert not watch.halted

        with rig.exchange.lock:  # a sub-account of the older system, to adopt
            legacy = rig.exchange.state.add_subaccount("legacyacct0001", rig.exchange.now_ms())
        cli = second_host(rig, same_host=True)
        try:
            recover(cli, reason="migration", adoptions=[Adoption("migrated-customer", legacy.uid)])
        finally:
            cli.close()
        watch.check()  # the running worker's next scheduler tick

        fresh = second_host(rig, same_host=True)  # any worker, now or after a restart
        try:
            try:
                fresh.state.establish()
                fresh.intake.accept(ev["kyc"])
            except StateLost as lost:
                raise AssertionError(f"the operator's recovery was halted by a running worker: {lost}") from None
        finally:
            fresh.close()
    finally:
        rig.close()
