"""Prometheus metrics: our own middleware and observers with ``prometheus_client``, multiprocess-safe.

Counters and histograms are written by every worker process (multiprocess mode under the dramatiq CLI, where
``PROMETHEUS_MULTIPROC_DIR`` is set by ``provisioner worker`` to a fresh folder before any process starts).
Gauges that must be exact across processes and restarts — active keys, pending intents, queue depth and age,
dead letters, daily cap use, live workers — are read from Redis at scrape time by ``RedisCollector``. The
exporter runs in a process forked by the dramatiq CLI and binds to loopback unless told otherwise.

dramatiq's built-in Prometheus middleware (``dramatiq.middleware.prometheus``, as of dramatiq 2.2) is not used,
for what it does when measured: it counts a retry twice (on the delay queue, and again when the message moves back
to its queue), never brings its delayed-messages gauge back to 0 (incremented on the delay queue, decremented on
the plain one), never clears its multiprocess folder (counters survive restarts), and without the dramatiq CLI
(an in-process ``dramatiq.Worker``: no ``after_process_boot``) logs an error for every message.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import dramatiq
from dramatiq.common import dq_name, xq_name
from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from handlers.events import field_paths
from worker.exchange.http import CallRecord
from worker.runtime.retry_policy import failure_kind
from worker.settings import Settings
from worker.store.due import DueSchedule
from worker.store.refusal_counts import read_counts
from worker.webhooks.dispatcher import AttemptRecord

__all__ = ["Metrics", "MetricsMiddleware", "RedisCollector", "serve_metrics"]

_INDEX = re.compile(r"\.\d+")


class Metrics:
    """Every counter and histogram of a worker process. ``registry=None`` in multiprocess mode (values go to
    files), a ``CollectorRegistry`` in tests and single-process runs."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r: Any = registry
        self.events_received = Counter(
            "provisioner_events_received_total", "Events accepted by intake.", ["type"], registry=r
        )
        self.events_refused = Counter(
            "provisioner_events_refused_total",
            "Events refused (reason: invalid, id_conflict, customer_closed).",
            ["type", "reason", "field"],
            registry=r,
        )
        self.reconciles = Counter("provisioner_reconciles_total", "Reconcile runs by outcome.", ["outcome"], registry=r)
        self.actions = Counter(
            "provisioner_actions_total",
            "Planner steps performed, by step and outcome.",
            ["action", "outcome"],
            registry=r,
        )
        self.exchange_requests = Counter(
            "provisioner_exchange_requests_total",
            "Exchange requests by endpoint, HTTP status and KuCoin code.",
            ["endpoint", "status", "code"],
            registry=r,
        )
        self.exchange_latency = Histogram(
            "provisioner_exchange_request_duration_seconds",
            "Exchange request latency.",
            ["endpoint"],
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8),
        )
        self.exchange_errors = Counter(
            "provisioner_exchange_errors_total",
            "Exchange failures by class (retryable, rate_limited, permanent, auth_config, outcome_unknown).",
            ["endpoint", "kind"],
            registry=r,
        )
        self.ratelimit_remaining = Gauge(
            "provisioner_exchange_ratelimit_remaining",
            "gw-ratelimit-remaining of the last response, by pool.",
            ["pool"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.ratelimit_limit = Gauge(
            "provisioner_exchange_ratelimit_limit",
            "gw-ratelimit-limit of the last response, by pool.",
            ["pool"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.ratelimit_waits = Counter(
            "provisioner_ratelimit_waits_total",
            "Times a customer was re-scheduled to wait for quota.",
            ["pool"],
            registry=r,
        )
        self.ratelimit_wait_seconds = Counter(
            "provisioner_ratelimit_wait_seconds_total",
            "Seconds customers were told to wait for quota.",
            ["pool"],
            registry=r,
        )
        self.unknown_outcomes = Counter(
            "provisioner_unknown_outcomes_total",
            "Exchange writes whose outcome was lost (resolved later by reading).",
            ["action"],
            registry=r,
        )
        self.messages = Counter(
            "provisioner_messages_total", "Messages processed by actor and outcome.", ["actor", "outcome"], registry=r
        )
        self.message_duration = Histogram(
            "provisioner_message_duration_seconds",
            "Message processing time.",
            ["actor"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.retries = Counter(
            "provisioner_retries_total",
            "Messages scheduled for a retry, by failure kind.",
            ["actor", "kind"],
            registry=r,
        )
        self.dead_letters = Counter(
            "provisioner_dead_letters_total",
            "Messages dead-lettered, by queue and kind.",
            ["queue", "kind"],
            registry=r,
        )
        self.auth_failures = Counter(
            "provisioner_auth_failures_total",
            "Auth/config failures (credentials, clock, IP, partner, host): page a human.",
            ["endpoint", "code"],
            registry=r,
        )
        self.state_lost = Gauge(
            "provisioner_state_lost",
            "1 once this worker found the state in Redis lost or rolled back and halted (kind: missing, changed, "
            "rolled_back, halted, traces, uninitialised). Run `provisioner recover`.",
            ["kind"],
            registry=r,
            multiprocess_mode="max",
        )
        self.webhook_deliveries = Counter(
            "provisioner_webhook_deliveries_total",
            "Webhook attempts by what became of the delivery: delivered, retry (scheduled), dead (given up after the "
            "retry horizon), stale (another attempt had taken over).",
            ["outcome"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "provisioner_webhook_attempts_total",
            "Webhook requests by answer: 2xx, 3xx, 4xx, 5xx, or none (timeout, connect error, ...).",
            ["answer"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "provisioner_webhook_request_duration_seconds",
            "Webhook request time (signing, sending, the receiver's answer).",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.funds_transferred = Counter(
            "provisioner_funds_transferred_total",
            "Amounts moved by committed transfers, by currency and direction.",
            ["currency", "direction"],
            registry=r,
        )

    def observe_call(self, record: CallRecord) -> None:
        """Exchange-client observer: one call's endpoint, status, code, latency and rate-limit headers."""
        endpoint = record.endpoint.name
        self.exchange_requests.labels(endpoint, str(record.http_status or "none"), record.code or "none").inc()
        self.exchange_latency.labels(endpoint).observe(record.duration_s)
        if record.outcome != "ok":
            self.exchange_errors.labels(endpoint, record.outcome).inc()
        if record.outcome == "auth_config":
            self.auth_failures.labels(endpoint, record.code or "none").inc()
        if record.rate_limit is not None:
            if record.rate_limit.remaining is not None:
                self.ratelimit_remaining.labels(record.endpoint.pool).set(record.rate_limit.remaining)
            if record.rate_limit.limit is not None:
                self.ratelimit_limit.labels(record.endpoint.pool).set(record.rate_limit.limit)

    def observe_webhook(self, record: AttemptRecord) -> None:
        """Dispatcher observer: one attempt's answer, duration and outcome."""
        status = record.answer.status
        self.webhook_attempts.labels("none" if status is None else f"{status // 100}xx").inc()
        self.webhook_latency.observe(record.duration_s)
        self.webhook_deliveries.labels(record.outcome).inc()

    def observe_transfer(self, currency: str, direction: str, amount: Decimal) -> None:
        """Reconciler observer: a committed transfer."""
        self.funds_transferred.labels(currency, direction).inc(float(amount))

    def observe_step(self, action: str, outcome: str) -> None:
        """Reconciler observer: one planner step and its outcome."""
        self.actions.labels(action, outcome).inc()
        if outcome == "outcome_unknown":
            self.unknown_outcomes.labels(action).inc()


class MetricsMiddleware(Middleware):
    """Per-message counters and durations, retries and dead letters. Never raises."""

    def __init__(self, metrics: Callable[[], Metrics]) -> None:
        self._metrics = metrics
        self._started: dict[str, float] = {}

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [serve_metrics] if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else []

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        started = self._started.pop(message.message_id, None)
        m = self._metrics()
        outcome = "ok" if exception is None else failure_kind(exception)
        m.messages.labels(message.actor_name, outcome).inc()
        if started is not None:
            m.message_duration.labels(message.actor_name).observe(time.perf_counter() - started)
        if exception is not None and not message.failed:
            m.retries.labels(message.actor_name, outcome).inc()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._started.pop(message.message_id, None)

    def on_dead(self, queue: str, kind: str) -> None:
        self._metrics().dead_letters.labels(queue, kind).inc()


class RedisCollector(Collector):
    """Gauges read from Redis at scrape time (exact across processes and restarts)."""

    def __init__(self, settings: Settings, queues: list[str]) -> None:
        from worker.bootstrap import redis_client
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
        ledger = r.hgetall(k.funding_day(day))
        for currency, cap in self._settings.funding_cap_per_day.items():
            units = int(ledger.get(f"used:{currency}", 0))
            used.add_metric([currency], float(Decimal(units) / Decimal(10) ** 8 / cap))
        yield used
        if self._settings.webhook_url is not None:
            yield from self._webhooks(now_ms)

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


def serve_metrics() -> int:
    """The exporter process (forked by the dramatiq CLI): aggregates every worker's values and Redis gauges."""
    from prometheus_client import start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    from worker.runtime.actors import QUEUE_EVENTS, QUEUE_RECONCILE, QUEUE_URGENT

    settings, _ = Settings.from_env()
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(RedisCollector(settings, [QUEUE_EVENTS, QUEUE_URGENT, QUEUE_RECONCILE]))
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    while True:
        time.sleep(3600)


def field_label(path: str) -> str:
    """A refused field's path as a label: without list indices, and a name the contract does not know (input, such
    as an unknown field's name) replaced by ``<other>`` after the longest known prefix, so the label only takes
    values from a fixed set."""
    parts = [] if path == "$" else _INDEX.sub("", path).split(".")
    known = field_paths()
    depth = 0
    while depth < len(parts) and ".".join(parts[: depth + 1]) in known:
        depth += 1
    if depth == len(parts):
        return path if not parts else ".".join(parts)
    return ".".join([*parts[:depth], "<other>"])
