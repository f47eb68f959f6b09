"""A funding line refused (never sent) gives back a reservation of the day's cap it holds: one made in a commit
whose rate-limiter rider then said wait (the reservation stays, the intent is never written) would otherwise count
on the day for a line that never moved."""

from __future__ import annotations

from decimal import Decimal

from handlers.daily_cap import utc_day
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, topup
from tests.core.harness import Rig, events_for
from worker.provisioning.money_steps import ledger_line


def test_a_line_refused_at_the_offboarding_gives_back_its_reservation(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        ref, _ = onboard_with_a_key(rig, "refrel-x")
        day = utc_day(int(rig.clock() * 1000))
        before = rig.app.ledger.used(day=day, currency="USDT")
        line = topup("refrel-x", "topup", 5, [("USDT", "250")])
        # what a commit stopped by the limiter leaves: the line's reservation, no intent
        assert rig.app.ledger.reserve(
            day=day, line=ledger_line(ref, "refrel-x-topup#0"), currency="USDT", amount=Decimal(250), cap=None
        )
        rig.publish(line, events_for("refrel-x", funding=())["offboard"])
        rig.settle(ref)
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["refrel-x-topup#0"]
        assert rig.app.ledger.used(day=day, currency="USDT") == before
    finally:
        rig.close()
