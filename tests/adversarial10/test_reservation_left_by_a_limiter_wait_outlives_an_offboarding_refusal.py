"""A funding line's reservation of the day's cap, written by the commit rider while the rate limiter then says wait,
is never released when the line is refused instead of sent (here by the customer's offboarding): the day's cap
counts money that never moved, and another customer's line that fits is refused by the cap.

Scenario: the Special Account's daily cap is 1000 USDT. Customer A's approval asks for a line of 600. The run's
transfer intent commit carries the reservation rider first and the limiter's admission second
(``worker.store.customers._COMMIT``): the reservation is written (used 600), the limiter says wait, nothing of the
commit is written and the run ends rate limited — by design "the reservation stays" (``worker.store.riders``). Before
the wait is over, A is offboarded: the next run refuses the line (``funding.refused``, offboarded) and closes A.
Then customer B's approval asks for 500.

What happens: ``refuse_funding`` records the refusal but releases no reservation (the record never held the day in
an intent's ``days``: the intent was never written), so the day still counts A's 600. B's 500 is refused by the
daily cap (600 + 500 > 1000) although 0 USDT left the Special Account that day.

Why it is wrong: README guarantee 6 — the cap counts lines that *may have moved money*; a reservation is "released
only when the transfer is known not to have happened" (``worker.store.ledger``), and a line refused before any
intent was recorded is known not to have happened. The upstream gets a wrong ``funding.refused`` for B (a verdict
the cap did not warrant), and the day's cap stays wrongly exhausted until midnight (``customer retry`` re-decides B
against the same leaked count).

Suggested fix: when a funding line is refused (``refuse_funding``: offboarding, per-customer cap, operator) release
its reservation of every day it may hold one (at least today's, ``ledger_line(ref, key)``; ``FundingLedger.release``
is idempotent), or record the reserved day in the record when the limiter refuses after the reservation rider (e.g.
make the admit rider run first so a limiter refusal writes no reservation).

How likely: needs a limiter wait on the transfer's commit (common in a campaign at the quota) and an offboarding (or
any refusal of that line) before the wait ends (seconds, up to the 30 s window): rare per line, but each occurrence
silently removes the line's amount from the day's cap for everyone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from handlers.daily_cap import utc_day
from tests.core.harness import Rig, events_for
from worker.exchange.endpoints import ENDPOINTS
from worker.ratelimit import PoolQuota, SharedRateLimiter, pool_key


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix, PROVISIONER_RATE_LIMIT="true", PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000")
    yield rig
    rig.close()


def test_a_reservation_left_by_a_limiter_wait_is_released_when_the_line_is_refused(rig: Rig) -> None:
    a = events_for("adv10-leak-a", funding=[("USDT", "600")])
    (ref_a,) = rig.publish(a["created"])
    assert rig.run(ref_a) is not None
    rig.publish(a["kyc"])
    pool = ENDPOINTS["transfer"].pool
    SharedRateLimiter(rig.app.redis, rig.app.keys, {pool: PoolQuota(2000)}).block(pool, 60_000)

    report = rig.run(ref_a)

    assert report is not None and report.outcome == "rate_limited"
    today = utc_day(int(rig.clock() * 1000))
    assert rig.app.ledger.used(day=today, currency="USDT") == 600  # the rider's reservation stays (by design)

    rig.publish(a["offboard"])  # A leaves before the wait is over
    rig.app.redis.delete(pool_key(rig.app.keys, pool))
    rig.settle(ref_a)
    refused_a = [o for o in rig.outbound() if o["type"] == "funding.refused" and o["customer_ref"] == ref_a]
    assert len(refused_a) == 1, "A's line was refused at the offboarding"
    assert not [t for t in rig.state()["transfers"] if t["direction"] == "OUT"], "nothing left the Special Account"

    b = events_for("adv10-leak-b", funding=[("USDT", "500")])
    (ref_b,) = rig.publish(b["created"])
    rig.settle(ref_b)
    rig.publish(b["kyc"])
    rig.settle(ref_b)

    verdicts_b = [o["type"] for o in rig.outbound() if o["customer_ref"] == ref_b and o["type"].startswith("funding.")]
    assert verdicts_b == ["funding.completed"], f"B's 500 fits a cap of 1000 with nothing paid today: {verdicts_b}"
