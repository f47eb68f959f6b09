"""The per-customer cap's case of an early declaration is held for an operator (a line the cap would have refused
for a straggler's transfer is not tied to it by elimination); a line the Special Account's *daily* cap refused is
held either: where each day the line may have been decided on (from when it could first have been sent to the
loss), as the Special Account's ledger shows that day's use, would not have fitted the line had the transfer been
another line's, the line waits for an operator, shown the order."""

from __future__ import annotations

import shutil

from tests.adversarial.helpers import onboard_with_a_key, outbound, outbound_of, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.recovery import declare_republished, recover


def test_an_early_declaration_tells_a_line_the_daily_cap_refused_completed_with_another_lines_transfer(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: per-customer cap 10000 USDT, the Special Account's daily cap 1000 USDT, default exchange (ledger
    entries name the orderId only). Top-up A1 (600 USDT) is paid; top-up A2 (600 USDT, a minute later) is refused by
    the daily cap (``funding.refused``, heard by the upstream). Redis loses everything; ``provisioner recover`` (no
    ``--heard``). The upstream re-publishes creation, approval and A2 and says it is done; the on-call declares
    ``--republished --stamps-kept``. A1's re-publication comes ten minutes later.

    What happens: A2 is looked for; one 600 USDT transfer to the sub-account no line we know explains (A1's): had
    it been another line's, A2 (600) would still fit the per-customer cap, so it is tied to A2 by elimination and
    the upstream is told ``funding.completed`` for A2 — which it was told refused before the loss. A1 then goes to
    an operator.

    Why it is wrong: as for the per-customer cap (``test_early_declaration_ties_a_refused_line_to_another_lines_
    payment``): ``funding.completed`` iff the transfer exists for that line. Here the day's use rebuilt from the
    ledger would show it (A2's amount and the day's use pass the daily cap); for a line decided before yesterday
    the worker holds no such record, and the check would have to hold it or read that day's ledger.

    What it does now: the worker reads the Special Account's ledger for each day the line may have been decided on
    (up to the loss); on this one 600 USDT moved, and 600 more pass the daily cap, so A2 is held for an operator,
    shown A1's order, rather than told completed on the declaration's say-so."""
    rig = Rig(
        redis_url,
        key_prefix,
        PROVISIONER_FUNDING_CAP_PER_CUSTOMER="USDT=10000,BTC=1,ETH=5,USDC=1000,KCS=100",
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "early-day")
        ev = events_for("early-day", funding=())
        a1 = topup("early-day", "topup-a1", 5, [("USDT", "600")])
        a2 = topup("early-day", "topup-a2", 6, [("USDT", "600")])
        rig.publish(a1, a2)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["600"]
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["early-day-topup-a2#0"]
        heard = outbound(rig.app)
        order_a1 = paid_to(rig, uid)[0]["orderId"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"], a2])
            settle_with(rig, app, ref)
            declare_republished(app, stamps_kept=True)  # early: A1 is still in the upstream's queue
            settle_with(rig, app, ref)
            rig.clock.advance_ms(10 * 60_000)
            redeliver(app, [a1])
            settle_with(rig, app, ref)

            told = {e["key"]: e.get("order_id") for e in heard + outbound(app) if e["type"] == "funding.completed"}
            record = app.store.load(ref)
            assert record is not None
            assert "early-day-topup-a2#0" not in told, (
                f"A2 (refused by the daily cap before the loss) told funding.completed under order "
                f"{told.get('early-day-topup-a2#0')} (A1's is {order_a1}); blocks: {sorted(record.blocked)}"
            )
            held = record.blocked.get("fund:early-day-topup-a2#0")
            assert held is not None and held.manual and order_a1 in held.reason and "daily cap" in held.reason
            assert "fund:early-day-topup-a2#0" in [e["step"] for e in outbound_of(app, "provisioning.failed")]

            settle_transfer(app, ref, "fund:early-day-topup-a2#0", verdict=TransferVerdict.REFUSED, who="oncall")
            settle_transfer(app, ref, "fund:early-day-topup-a1#0", committed=True, order_id=order_a1, who="oncall")
            settle_with(rig, app, ref)
            told = {e["key"]: e.get("order_id") for e in outbound(app) if e["type"] == "funding.completed"}
            assert told == {"early-day-topup-a1#0": order_a1}
            assert [t["orderId"] for t in paid_to(rig, uid)] == [order_a1]
        finally:
            app.close()
    finally:
        rig.close()
