"""The likelier form of the leaked reservation: no offboarding, only re-ordered delivery. A top-up's line reserved
by the commit rider while the limiter said wait is then refused by the per-customer cap (an earlier top-up,
delivered later, is decided first): the day's cap keeps counting the refused line's amount, and refuses another
customer's line it has room for.

Scenario: per-customer cap 1000 USDT, the Special Account's daily cap 1500 USDT. Customer A (a key, nothing funded)
asks for two top-ups, T1 at 10:05 and T2 at 10:06, 600 USDT each; the queue delivers T2 first. T2's intent commit
writes its reservation (rider) and the limiter says wait. T1 arrives; the next run decides T1 first (event order):
paid 600. T2 no longer fits A's cap (600 + 600 > 1000): ``funding.refused``, rightly. Then customer B asks for 500.

What happens: T2's reservation (600) is never released (``refuse_funding`` releases nothing; no intent of T2 ever
recorded the day), so the day counts 1200 for the 600 that moved, and B's 500 is refused by the daily cap
(1200 + 500 > 1500).

Why it is wrong: the daily cap counts lines that may have moved money; T2 was refused before anything of it was
recorded or sent. B gets a wrong ``funding.refused`` and the day loses 600 of its cap for every customer.

Suggested fix: as for the offboarding form — ``refuse_funding`` releases the line's reservation of today (and of
any day its record names), or the admit rider runs before the reserve rider so a limiter refusal leaves nothing.

How likely: a limiter wait at a transfer's commit is routine in a campaign at the quota; two top-ups of one
customer delivered out of order, the later one refused by the per-customer cap, is uncommon but ordinary at-least-
once, unordered delivery.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from handlers.daily_cap import utc_day
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, topup
from tests.core.harness import Rig, events_for
from worker.exchange.endpoints import ENDPOINTS
from worker.ratelimit import PoolQuota, SharedRateLimiter, pool_key


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix, PROVISIONER_RATE_LIMIT="true", PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1500")
    yield rig
    rig.close()


def test_a_reservation_left_by_a_limiter_wait_is_released_when_the_per_customer_cap_refuses_the_line(rig: Rig) -> None:
    ref_a, uid_a = onboard_with_a_key(rig, "adv10-cap-a")
    t1 = topup("adv10-cap-a", "t1", 5, [("USDT", "600")])
    t2 = topup("adv10-cap-a", "t2", 6, [("USDT", "600")])
    pool = ENDPOINTS["transfer"].pool
    rig.publish(t2)  # delivered first
    SharedRateLimiter(rig.app.redis, rig.app.keys, {pool: PoolQuota(2000)}).block(pool, 60_000)
    report = rig.run(ref_a)
    assert report is not None and report.outcome == "rate_limited"
    today = utc_day(int(rig.clock() * 1000))
    assert rig.app.ledger.used(day=today, currency="USDT") == 600  # T2's reservation, written by the rider

    rig.publish(t1)
    rig.app.redis.delete(pool_key(rig.app.keys, pool))
    rig.settle(ref_a)
    assert [t["amount"] for t in paid_to(rig, uid_a)] == ["600"]
    assert [e["key"] for e in outbound_of(rig, "funding.completed")] == [f"{t1['id']}#0"]
    assert [e["key"] for e in outbound_of(rig, "funding.refused")] == [f"{t2['id']}#0"], "T2: per-customer cap"

    b = events_for("adv10-cap-b", funding=[("USDT", "500")])
    (ref_b,) = rig.publish(b["created"], b["kyc"])[:1]
    rig.settle(ref_b)

    verdicts_b = [
        (o["type"], o.get("reason"))
        for o in rig.outbound()
        if o["customer_ref"] == ref_b and o["type"].startswith("funding.")
    ]
    used = rig.app.ledger.used(day=today, currency="USDT")
    assert [v[0] for v in verdicts_b] == ["funding.completed"], f"600 moved, cap 1500: {verdicts_b}; day used {used}"
