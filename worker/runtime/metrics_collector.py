"""The gauges read from Redis at scrape time (``RedisCollector``): exact across processes and restarts, whichever
process wrote them. Each figure is read through the store that owns it, never decoded again here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import dramatiq
from dramatiq.common import dq_name, xq_name
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from worker.settings import Settings
from worker.store.due import DueSchedule
from worker.store.ledger import FundingLedger
from worker.store.refusal_counts import read_counts

__all__ = ["RedisCollector"]


class RedisCollector(Collector):
    """Gauges read from Redis at scrape time (exact across processes and restarts)."""

    def __init__(self, settings: Settings, queues: list[str]) -> None:
        from worker.store.client import redis_client
        from worker.store.keys import Keys

        self._redis = redis_client(settings)
        self._keys = Keys(settings.key_prefix)
        self._namespace = f"{settings.key_prefix}-dramatiq"
        self._queues = queues
        self._settings = settings
        self._heartbeat_timeout_ms = settings.recovery_seconds * 500

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now_ms = int(time.time() * 1000)
        r, k, ns = self._redis, self._keys, self._namespace
        depth = GaugeMetricFamily(
            "provisioner_queue_depth", "Messages waiting, by queue (delayed included).", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "provisioner_queue_oldest_message_age_seconds",
            "Age of the oldest waiting message, by queue.",
            labels=["queue"],
        )
        dead = GaugeMetricFamily("provisioner_dead_letters", "Dead letters present, by queue.", labels=["queue"])
        for queue in self._queues:
            waiting = int(r.llen(f"{ns}:{queue}")) + int(r.llen(f"{ns}:{dq_name(queue)}"))
            depth.add_metric([queue], waiting)
            dead.add_metric([queue], int(r.zcard(f"{ns}:{xq_name(queue)}")))
            age.add_metric([queue], self._oldest_age(queue, now_ms))
        yield from (depth, age, dead)

        pending = GaugeMetricFamily(
            "provisioner_intents_pending", "Exchange writes recorded whose outcome is not yet known."
        )
        pending.add_metric([], int(r.zcard(k.pending)))
        yield pending
        oldest = r.zrange(k.pending, 0, 0, withscores=True)
        oldest_age = GaugeMetricFamily(
            "provisioner_intent_oldest_age_seconds", "Age of the oldest exchange write whose outcome is not yet known."
        )
        oldest_age.add_metric([], max(0.0, (now_ms - float(oldest[0][1])) / 1000) if oldest else 0.0)
        yield oldest_age

        unstored = GaugeMetricFamily(
            "provisioner_events_unstored",
            "Events published whose event no worker has stored yet (re-sent if lost; see worker.runtime.handoff).",
        )
        unstored.add_metric([], sum(int(r.zcard(k.handoff(queue))) for queue in self._queues))
        yield unstored

        halted = GaugeMetricFamily(
            "provisioner_state_halted",
            "1 while the workers are halted because the state in Redis was found lost or rolled back.",
        )
        halted.add_metric([], 1 if r.hget(k.state, "halted") else 0)
        yield halted

        yield self._undeclared(now_ms)

        yield self._refused()

        blocked = GaugeMetricFamily(
            "provisioner_customers_blocked",
            "Customers with a step the exchange refused for good, waiting for an operator.",
        )
        blocked.add_metric([], int(r.zcard(k.blocked)))
        yield blocked

        stats = r.hgetall(k.stats)
        active = GaugeMetricFamily("provisioner_keys_active", "Customer API keys live on the exchange.")
        active.add_metric([], int(stats.get("keys_active", 0)))
        yield active
        for name, help_text in (
            ("keys_issued", "Customer API keys issued."),
            ("keys_revoked", "Customer API keys revoked."),
        ):
            family = GaugeMetricFamily(f"provisioner_{name}", f"{help_text} (all time, from Redis)")
            family.add_metric([], int(stats.get(name, 0)))
            yield family

        due = GaugeMetricFamily("provisioner_due_backlog", "Customers due for a reconcile now.")
        schedule = DueSchedule(r, k)
        due.add_metric([], schedule.backlog(now_ms))
        yield due

        workers = GaugeMetricFamily(
            "provisioner_workers_alive",
            "Worker processes whose scheduler thread reported recently (publishers excluded).",
        )
        workers.add_metric([], schedule.workers_alive(now_ms, within_ms=self._heartbeat_timeout_ms))
        yield workers

        day = time.strftime("%Y%m%d", time.gmtime())
        used = GaugeMetricFamily(
            "provisioner_funding_cap_used_ratio",
            "Share of today's Special Account funding cap already used, by currency.",
            labels=["currency"],
        )
        ledger = FundingLedger(r, k)
        for currency, cap in self._settings.funding_cap_per_day.items():
            used.add_metric([currency], float(ledger.used(day=day, currency=currency) / cap))
        yield used
        if self._settings.webhook_url is not None:
            yield from self._webhooks(now_ms)

    def _undeclared(self, now_ms: int) -> GaugeMetricFamily:
        """How long the last recovery after a loss has waited for its re-publication's declaration (0: none)."""
        from worker.store.recovery_marks import undeclared_since

        family = GaugeMetricFamily(
            "provisioner_recovery_undeclared_seconds",
            "Time since the last recovery after a loss of our state while the upstream's re-publication is not "
            "declared complete (provisioner recover --republished): recovered customers' funding waits meanwhile. "
            "0 when none is open.",
        )
        open_since = undeclared_since(self._redis, self._keys)
        family.add_metric([], max(0.0, (now_ms - open_since) / 1000) if open_since is not None else 0.0)
        return family

    def _refused(self) -> CounterMetricFamily:
        """Refused events counted in Redis by whichever process refused them (``worker.store.refusal_counts``)."""
        family = CounterMetricFamily(
            "provisioner_events_refused_recorded",
            "Events refused, wherever (stage: publish, api, worker), by reason class (malformed, invalid, "
            "id_conflict, customer_closed) and top-level field (all time, from Redis).",
            labels=["stage", "reason", "field"],
        )
        for (stage, reason, field), count in sorted(read_counts(self._redis, self._keys.refused_counts).items()):
            family.add_metric([stage, reason, field], count)
        return family

    def _webhooks(self, now_ms: int) -> Iterator[GaugeMetricFamily]:
        from worker.webhooks.store import DeliveryStore

        status = DeliveryStore(self._redis, self._keys).status()
        undelivered = GaugeMetricFamily(
            "provisioner_webhook_undelivered", "Outbound events admitted for delivery and not yet delivered."
        )
        undelivered.add_metric([], status.undelivered)
        yield undelivered
        age = GaugeMetricFamily(
            "provisioner_webhook_oldest_undelivered_age_seconds",
            "Age of the oldest outbound event not yet delivered by webhook (0 when none waits); it grows when the "
            "receiver fails or no dispatcher runs.",
        )
        age.add_metric([], max(0.0, (now_ms - status.oldest_ms) / 1000) if status.oldest_ms is not None else 0.0)
        yield age
        dead = GaugeMetricFamily(
            "provisioner_webhook_dead_letters", "Webhook deliveries given up after the retry horizon (not retried)."
        )
        dead.add_metric([], status.dead_letters)
        yield dead

    def _oldest_age(self, queue: str, now_ms: int) -> float:
        ns = self._namespace
        head = self._redis.lindex(f"{ns}:{queue}", 0)
        if head is None:
            return 0.0
        body = self._redis.hget(f"{ns}:{queue}.msgs", head)
        if body is None:
            return 0.0
        try:
            stamp = int(dramatiq.Message.decode(body if isinstance(body, bytes) else body.encode()).message_timestamp)
        except Exception:
            return 0.0
        return max(0.0, (now_ms - stamp) / 1000)
