"""A new host after a total loss asks the exchange whether it already has sub-accounts of ours, but reads only the
first and the last page of the listing: a broker whose other sub-accounts (an older system's, hand-made ones) fill
those pages looks new, a fresh epoch is created, and every re-delivered event is acted on without an audit."""

from __future__ import annotations

import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import all_paid
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.store.epoch import StateLost


def _others(rig: Rig, count: int, tag: str) -> None:
    with rig.exchange.lock:
        for i in range(count):
            rig.exchange.state.add_subaccount(f"legacy{tag}{i:04d}x", rig.exchange.now_ms())


def test_a_new_host_after_a_total_loss_misses_our_sub_accounts_in_the_middle_pages(
    redis_url: str, key_prefix: str
) -> None:
    """Lost state is detected on a new host: traces read only the first/last listing page; fresh epoch, paid twice."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(duplicate_client_oid="accept"))
    try:
        _others(rig, 150, "a")
        ev = events_for("middle-page")
        lifecycle = [ev["created"], ev["kyc"]]
        ref = rig.publish(*lifecycle)[0]
        rig.settle(ref)
        _others(rig, 150, "b")
        assert len(all_paid(rig)) == 1

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)  # a new host (no persistent mirror)
        app = second_host(rig, same_host=True)
        try:
            try:
                app.state.establish()  # what `provisioner worker` does at start
                ref = redeliver(app, lifecycle)
                settle_with(rig, app, ref)
            except StateLost:
                return  # detected: what the guarantee asks for
            live = [k for k in rig.state()["apiKeys"] if k["deletedAt"] is None]
            paid = all_paid(rig)
            assert len(paid) == 1 and len(live) == 1, (
                f"the loss went unnoticed: {len(paid)} transfers for one line, {len(live)} live keys"
            )
        finally:
            app.close()
    finally:
        rig.close()
