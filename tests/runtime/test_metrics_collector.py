"""The Redis gauges read at scrape time: each figure is the one its owning store keeps."""

from __future__ import annotations

import time
from decimal import Decimal

import redis

from tests.core.harness import settings_for
from worker.runtime.metrics_collector import RedisCollector
from worker.store.keys import Keys
from worker.store.ledger import FundingLedger


def test_funding_cap_use_is_the_ledgers_use_of_today_over_the_cap(redis_url: str, key_prefix: str) -> None:
    """What the funding ledger reserved today, per currency, over that currency's daily cap (0 when none was)."""
    settings = settings_for(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY="USDT=400,BTC=2")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        day = time.strftime("%Y%m%d", time.gmtime())
        ledger = FundingLedger(client, Keys(key_prefix))
        assert ledger.reserve(day=day, line="a:1", currency="USDT", amount=Decimal("100.12345678"), cap=None)
        collector = RedisCollector(settings, ["events"])
        family = next(f for f in collector.collect() if f.name == "provisioner_funding_cap_used_ratio")
        ratios = {s.labels["currency"]: s.value for s in family.samples}
        assert ratios["USDT"] == float(Decimal("100.12345678") / Decimal(400))
        assert ratios["BTC"] == 0.0
    finally:
        client.close()


def test_an_open_recovery_counts_until_its_re_publication_is_declared(redis_url: str, key_prefix: str) -> None:
    """``provisioner_recovery_undeclared_seconds``: 0 with no recovery after a loss; the recovery's age while the
    re-publication is not declared (alert ``RepublicationUndeclared``); 0 again once it is, until the next loss."""
    settings = settings_for(redis_url, key_prefix)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(key_prefix)
    collector = RedisCollector(settings, ["events"])

    def undeclared() -> float:
        family = next(f for f in collector.collect() if f.name == "provisioner_recovery_undeclared_seconds")
        return float(family.samples[0].value)

    try:
        assert undeclared() == 0.0
        lost_at = int(time.time() * 1000) - 3 * 3_600_000
        client.set(keys.recovery_lost_at, str(lost_at))
        assert 3 * 3600 - 5 <= undeclared() <= 3 * 3600 + 60
        client.set(keys.recovery_republished_at, str(lost_at + 1))
        assert undeclared() == 0.0
        client.set(keys.recovery_lost_at, str(lost_at + 2))  # a later loss: its re-publication is not declared
        assert undeclared() > 0
    finally:
        client.delete(keys.recovery_lost_at, keys.recovery_republished_at)
        client.close()
