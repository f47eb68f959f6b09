"""Money after Redis lost data: recovery must neither pay a line twice nor forget what the Special Account already
paid today."""

from __future__ import annotations

import shutil

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import all_paid, outbound_of, total
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with


@pytest.mark.parametrize("context", ["client_oid", "order_id"])
def test_a_line_paid_more_than_five_minutes_before_the_recovery_is_paid_again(
    redis_url: str, key_prefix: str, context: str
) -> None:
    """No double transfer after a Redis loss: a line paid >5 min before the recovery is not found and paid again."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": context})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ev = events_for(f"old-line-{context}")
        lifecycle = [ev["created"], ev["kyc"]]
        ref = rig.publish(*lifecycle)[0]
        rig.settle(ref)
        assert [t["amount"] for t in all_paid(rig)] == ["250"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        rig.clock.advance_ms(10 * 60_000)  # paged, on-call recovers ten minutes later
        app = second_host(rig, same_host=True)
        try:
            from worker.recovery import recover

            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, lifecycle)
            settle_with(rig, app, ref)
            paid = all_paid(rig)
            assert [t["amount"] for t in paid] == ["250"], f"the line was paid again after the recovery: {paid}"
        finally:
            app.close()
    finally:
        rig.close()


def test_a_paid_line_of_a_customer_offboarded_by_the_recovery_is_told_refused(redis_url: str, key_prefix: str) -> None:
    """funding.refused never for paid money: after a loss, an offboarded customer's paid line is told refused."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("paid-then-refused")
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        line = f"{ev['kyc']['id']}#0"
        assert [e["key"] for e in outbound_of(rig, "funding.completed")] == [line]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            from worker.recovery import recover

            recover(app, reason="test")
            ref = redeliver(app, [ev["created"], ev["kyc"], ev["offboard"]])
            settle_with(rig, app, ref)
            assert [t["amount"] for t in all_paid(rig)] == ["250"], "the line was paid, once"
            refused = [e["key"] for e in outbound_of(app, "funding.refused")]
            assert line not in refused, f"a paid line (told completed before the loss) is now told refused: {refused}"
        finally:
            app.close()
    finally:
        rig.close()


def test_the_daily_cap_forgets_what_was_paid_today_after_a_loss(redis_url: str, key_prefix: str) -> None:
    """Per-day cap never exceeded after a Redis loss: the day's usage is not rebuilt; 1600 paid on a 1000 cap."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000")
    try:
        first = events_for("day-cap-a", funding=(("USDT", "800"),))
        ref = rig.publish(first["created"], first["kyc"])[0]
        rig.settle(ref)
        assert total(all_paid(rig)) == 800

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            from worker.recovery import recover

            recover(app, reason="test")
            ref = redeliver(app, [first["created"], first["kyc"], first["offboard"]])  # everything, re-published
            settle_with(rig, app, ref)
            second = events_for("day-cap-b", funding=(("USDT", "800"),))
            ref_b = redeliver(app, [second["created"], second["kyc"]])
            settle_with(rig, app, ref_b)
            paid_today = total(all_paid(rig))
            assert paid_today <= 1000, f"the Special Account paid {paid_today} USDT today against a daily cap of 1000"
        finally:
            app.close()
    finally:
        rig.close()
