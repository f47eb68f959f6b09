"""Prometheus metrics, the declarations: every counter, histogram and gauge a worker process writes, and the
observers that write them. Multiprocess-safe with ``prometheus_client``.

Counters and histograms are written by every worker process (multiprocess mode under the dramatiq CLI, where
``PROMETHEUS_MULTIPROC_DIR`` is set by ``provisioner worker`` to a fresh folder before any process starts).
Gauges that must be exact across processes and restarts — active keys, pending intents, queue depth and age,
dead letters, daily cap use, live workers — are read from Redis at scrape time by
``worker.runtime.metrics_collector.RedisCollector``. The per-message counters are written by
``worker.runtime.metrics_middleware``; the exporter (``worker.runtime.metrics_exporter``) runs in a process forked
by the dramatiq CLI and binds to loopback unless told otherwise.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from handlers.events import field_paths
from worker.exchange.http import CallRecord
from worker.webhooks.dispatcher import AttemptRecord

__all__ = ["Metrics", "field_label"]

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
            "Exchange failures by class (retryable, rate_limited, permanent, auth_config, outcome_unknown, ...; "
            "malformed: answered 200000 with data that does not read as documented).",
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
            "Times a customer was re-scheduled to wait: for an exchange pool's quota, or a wait of our own — "
            "daily_cap (the Special Account's daily cap a send near midnight may count on), listing (a key the "
            "exchange may not list yet), key_rollout (KYC documents under an encryption key this process does not "
            "hold yet).",
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
