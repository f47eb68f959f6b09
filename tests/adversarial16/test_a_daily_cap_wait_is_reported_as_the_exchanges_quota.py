"""d4753ac: a line that a day's cap it only *may* count on refuses (the previous day's, in the 15 s after UTC
midnight) waits: ``_wait_out`` raises ``RateLimitedError(endpoint="transfer")``. The reconciler reports every
``RateLimitedError`` as a wait for the exchange's quota of the endpoint's pool (``RunReport.waited_pool`` =
``ENDPOINTS["transfer"].pool``, "Broker"), and the actor counts it in ``provisioner_ratelimit_waits_total`` and
``provisioner_ratelimit_wait_seconds_total`` ("Times a customer was re-scheduled to wait for quota", by pool; the
dashboard's rate-limit panel).

Scenario: daily cap 1000 USDT, the old day's cap used up; customer B's 500 USDT top-up is decided at 00:00:05.

What happens: B's run ends ``rate_limited`` with ``waited_pool="Broker"``, ``waited_ms=10001``: the metrics say
KuCoin's Broker pool throttled the worker at midnight. Every day a cap runs out, the first seconds of the next day
show Broker-pool quota waits that never happened (no 429, no request made).

Why it is wrong: the metrics are how the on-call tells KuCoin's throttling from the worker's own limits (the pool
quota is a KuCoin setting they may raise a ticket about); a cap wait is the Special Account's own limit, and the
metric's help says "wait for quota".

Suggested fix: a distinct error (or ``endpoint="daily_cap"``, not in ``ENDPOINTS`` → ``waited_pool`` "unknown"), or
a ``RunReport.waited_for = "daily_cap"`` and a counter of its own.

Likelihood: certain whenever the wait happens; observability only (no money effect).
"""

from __future__ import annotations

from datetime import UTC, datetime

from tests.adversarial.helpers import onboard_with_a_key, stamped_now
from tests.core.harness import Rig

DAY_CAP = "USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000"


def _at(day: int, hour: int, minute: int, second: int) -> float:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_a_cap_wait_after_midnight_is_reported_as_a_broker_pool_quota_wait(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY=DAY_CAP)
    try:
        ref_a, _ = onboard_with_a_key(rig, "pool-a")
        ref_b, _ = onboard_with_a_key(rig, "pool-b")
        rig.clock.now = _at(18, 18, 0, 0)
        rig.publish(stamped_now(rig, "pool-a", "topup", [("USDT", "1000")]))
        rig.settle(ref_a)
        rig.clock.now = _at(19, 0, 0, 5)
        rig.publish(stamped_now(rig, "pool-b", "topup", [("USDT", "500")]))
        report = rig.run(ref_b)
        assert report is not None and report.outcome == "rate_limited", report  # the wait, as d4753ac made it
        assert report.waited_pool not in ("Broker", "Management"), (
            f"a daily cap wait reported as the exchange's {report.waited_pool} pool quota ({report.waited_ms} ms)"
        )
    finally:
        rig.close()
