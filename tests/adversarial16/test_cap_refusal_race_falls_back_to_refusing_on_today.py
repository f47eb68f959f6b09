"""d4753ac: after a reservation rider refused, ``_cap_refusal`` reads each day's use again to tell *which* day
refused — the previous day (in the skew after midnight: wait) or today (refuse). When none of the days reads over
the cap any more (another worker released a reservation between the commit's script and these reads), it falls back
to ``uses[-1]`` — the *last* day, which after midnight is today — and the line is refused for good:
``funding.refused`` told, "daily cap of 1000 USDT would be exceeded (used 0)".

Scenario: daily cap 1000 USDT. On 2026-11-18 the cap is used up: customer A's top-up of 500 is paid, and another
line of 500 holds a reservation (in flight on another worker). At 00:00:05 on 2026-11-19 customer B's top-up of 500
is decided: its riders reserve on 2026-11-18 (the skew) and 2026-11-19; the old day refuses. Between that script and
``_cap_refusal``'s reads the other worker gives its line's reservation back (its transfer was refused, or it
executed after midnight and keeps only the new day: ``_counted_on_execution_day``) — in the first seconds after a
busy midnight, releases of the old day are exactly what happens.

What happens: no day reads over the cap; ``_cap_refusal`` names 2026-11-19, the line's own day, so ``transfer``
refuses it: funding.refused "(used 0)" for a line both days now have room for.

Why it is wrong: d4753ac's own rule — a refusal by a day the send only may count on is a wait, not a refusal; and a
refusal must name a day that cannot take the line. When the reads find no such day, the rider's refusal was of a
state that is gone: the line should simply be tried again (a wait of 0), never refused.

Suggested fix: ``_cap_refusal`` returns ``None`` when no day is over the cap and ``transfer`` retries (raise a
``RateLimitedError`` with a minimal wait); or make the rider answer *which* day refused (the index of the refusing
rider) so nothing is read again.

Likelihood: a race of two Redis round trips, at the moment (just after midnight, old day full) when releases of the
old day's reservations cluster; the outcome is a false refusal told to the upstream, undone only by an operator.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tests.adversarial.helpers import onboard_with_a_key, outbound, stamped_now
from tests.core.harness import Rig

DAY_CAP = "USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000"


def _at(day: int, hour: int, minute: int, second: int) -> float:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_a_release_between_the_rider_and_its_reading_turns_a_wait_into_a_refusal(
    redis_url: str, key_prefix: str
) -> None:
    rig = Rig(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY=DAY_CAP)
    try:
        ref_a, _ = onboard_with_a_key(rig, "race-a")
        ref_b, _ = onboard_with_a_key(rig, "race-b")
        rig.clock.now = _at(18, 18, 0, 0)
        rig.publish(stamped_now(rig, "race-a", "topup", [("USDT", "500")]))
        rig.settle(ref_a)
        ledger = rig.app.ledger
        other = "another-worker:line#0"
        assert ledger.reserve(day="20261118", line=other, currency="USDT", amount=Decimal(500), cap=Decimal(1000))
        assert ledger.used(day="20261118", currency="USDT") == 1000

        real_used = ledger.used
        released: list[bool] = []

        def used_after_the_other_release(**kwargs: Any) -> Decimal:
            if not released:  # the other worker's release lands between B's script and this read
                released.append(ledger.release(day="20261118", line=other))
            return real_used(**kwargs)

        ledger.used = used_after_the_other_release  # type: ignore[method-assign]
        rig.clock.now = _at(19, 0, 0, 5)
        rig.publish(stamped_now(rig, "race-b", "topup", [("USDT", "500")]))
        rig.settle(ref_b)
        ledger.used = real_used  # type: ignore[method-assign]

        told = [e for e in outbound(rig) if e.get("customer_ref") == ref_b and e["type"] == "funding.refused"]
        assert released == [True]
        assert not told, f"B refused though both days had room once read: {told[0].get('reason')}"
    finally:
        rig.close()
