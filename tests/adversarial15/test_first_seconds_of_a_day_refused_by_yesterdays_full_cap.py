"""20078c0: a funding send "in the skew after midnight" reserves on the previous day too
(``reservation_days``: from ``now - LEDGER_SKEW_MS``), as a rider of the intent's commit — and a rider that refuses
refuses the line: ``transfer`` turns ``RiderRefused`` into ``refuse_funding``, told to the upstream (decided again
only by an operator's ``provisioner customer retry``).

Scenario: daily cap 1000 USDT, any clientOid setting. On 2026-11-18 the Special Account's cap is used up (customer
A's top-up of 1000 at 18:00, an ordinary busy day). Customer B's top-up of 500 is decided at 00:00:05 on
2026-11-19 (a campaign, or a queue of funding that waited for the new day's cap — the very reason a day cap
exists).

What happens: B's send would reserve on 2026-11-18 as well (00:00:05 − 15 s is still the old day); that day is full,
the rider refuses, and B's line is refused ("daily cap of 1000 USDT would be exceeded (used 1000)"),
``funding.refused`` told to the upstream — on a day whose cap shows 0 used.

Why it is wrong: README "Money limits": the daily cap refuses what the day the exchange counts on cannot take; the
day the exchange may count B's transfer on is 2026-11-19 (or, only if its clock lags ours, 2026-11-18). A
reservation made for a possibility must not turn into a final refusal: the upstream hears "refused by the daily
cap" for a line that the new day's cap takes. Every line decided in the first 15 s of every UTC day is refused
whenever the previous day's cap is full.

Suggested fix: for the extra day(s) ``reservation_days`` adds around midnight, a refusal means *wait* (re-plan the
line after ``LEDGER_SKEW_MS`` past midnight, when only the new day is reserved), not refuse; only the day of ``now``
refusing is a cap refusal. Same for the day after midnight in the minute before it: wait until midnight has passed.

Likelihood in production: certain on any day whose cap ran out, for every line decided in the first 15 s after
00:00 UTC (and, symmetrically, in the last minute before it when the new day is already full of such lines). Not a
money loss, but a false refusal told to the upstream, undone only by an operator's retry.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tests.adversarial.helpers import onboard_with_a_key, outbound, stamped_now
from tests.core.harness import Rig

DAY_CAP = "USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000"


def _at(day: int, hour: int, minute: int, second: int) -> float:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_a_line_decided_five_seconds_after_midnight_is_refused_by_yesterdays_full_cap(
    redis_url: str, key_prefix: str
) -> None:
    rig = Rig(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY=DAY_CAP)
    try:
        ref_a, _ = onboard_with_a_key(rig, "skew-a")
        ref_b, _ = onboard_with_a_key(rig, "skew-b")
        rig.clock.now = _at(18, 18, 0, 0)
        rig.publish(stamped_now(rig, "skew-a", "topup", [("USDT", "1000")]))
        rig.settle(ref_a)
        assert rig.app.ledger.used(day="20261118", currency="USDT") == 1000  # the old day's cap is used up

        rig.clock.now = _at(19, 0, 0, 5)
        rig.publish(stamped_now(rig, "skew-b", "topup", [("USDT", "500")]))
        rig.settle(ref_b)

        assert rig.app.ledger.used(day="20261119", currency="USDT") in (0, 500)
        told = [e["type"] for e in outbound(rig) if e.get("customer_ref") == ref_b and e["type"].startswith("funding")]
        (line,) = rig.record(ref_b).transfers.values()
        assert "funding.refused" not in told, (
            f"B's 500 USDT decided at 00:00:05 on 2026-11-19 (0 of 1000 used that day) was refused: {line.note}"
        )
        # it waited until the send could no longer count on the old day, then was paid on the new one
        assert line.status.value == "committed" and "funding.completed" in told, (line, told)
        assert rig.app.ledger.used(day="20261119", currency="USDT") == 500
    finally:
        rig.close()
