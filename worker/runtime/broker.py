"""Building the runtime of one process: the dramatiq Redis broker with our middleware, the actors, the app.

``build_runtime`` is used by the dramatiq CLI entry point (one per worker process), by ``provisioner`` commands
that enqueue or inspect messages, and by tests (with the simulator's transport and a private registry).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    ShutdownNotifications,
    TimeLimit,
)
from prometheus_client import CollectorRegistry

from worker.bootstrap import App, build_app, intake_sealer
from worker.erasure import RetentionSweep
from worker.publish import Publisher
from worker.runtime.actors import Actors, declare_actors
from worker.runtime.admission import dramatiq_namespace
from worker.runtime.deadletters import DeadLetterMiddleware, DeadLetters
from worker.runtime.delayed_recovery import DelayedMessageRecovery
from worker.runtime.durable_retries import DurableRetries
from worker.runtime.handoff import Handoff
from worker.runtime.holder import Holder
from worker.runtime.logcontext import LogContextMiddleware
from worker.runtime.metrics import Metrics
from worker.runtime.metrics_middleware import MetricsMiddleware
from worker.runtime.prompt_broker import PromptRedisBroker
from worker.runtime.queues import EVENT_QUEUES, QUEUES
from worker.runtime.retry_policy import RetryPolicy
from worker.runtime.scheduler import DueScheduler, SchedulerMiddleware
from worker.runtime.state_watch import StateWatch
from worker.settings import Settings
from worker.store.epoch import check_naming
from worker.store.keys import Keys
from worker.webhooks.runtime import WebhookMiddleware, build_dispatcher

__all__ = ["QUEUES", "Runtime", "build_runtime", "recovery_tuning"]

TIME_LIMIT_MS = 15 * 60 * 1000
"""The longest a message may run: far above the longest reconcile (a few exchange calls, each bounded by the
HTTP time-outs); only a bug reaches it."""


def recovery_tuning(recovery_seconds: int) -> dict[str, int]:
    """The broker options that put a dead worker's messages back within ``recovery_seconds``: its heartbeat
    expires after half the bound, and each queue's maintenance runs on its first call after a tenth of the bound
    (at most a second) since the last (``PromptRedisBroker``); an idle consumer calls at least once a second, so
    the rest of the bound is margin."""
    return {
        "heartbeat_timeout": recovery_seconds * 500,
        "maintenance_chance": 0,
        "maintenance_interval_ms": min(1_000, recovery_seconds * 100),
    }


@dataclass
class Runtime:
    settings: Settings
    broker: RedisBroker
    actors: Actors
    holder: Holder[App]
    metrics: Metrics
    scheduler: DueScheduler
    handoff: Handoff
    state_watch: StateWatch
    webhooks: WebhookMiddleware

    @property
    def app(self) -> App:
        return self.holder.get()

    def dead_letters(self) -> DeadLetters:
        app = self.app
        return DeadLetters(self.broker, app.redis, app.keys, QUEUES, handoff=self.handoff, proofs=app.proofs)

    def publisher(self) -> Publisher:
        """A publisher that validates events and sends them through the hand-off. Raises ``NamingMismatch`` when
        this process names customers otherwise than the deployment (its refusals and its look-ups of stored
        events would be keyed under other refs), and ``redis.RedisError``."""
        app = self.app
        check_naming(app.redis, app.keys, app.policy.naming.fingerprint(), record=False)
        return Publisher(
            app.intake,
            intake_sealer(self.settings),
            self.actors,
            self.handoff,
            proofs=app.proofs,
            customer_ref=app.policy.naming.customer_ref,
        )

    def close(self) -> None:
        self.holder.close()
        self.broker.close()


def build_runtime(
    settings: Settings,
    *,
    transport: httpx.BaseTransport | None = None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    scheduler_interval_s: float = 0.25,
    stop_on_state_lost: Callable[[], None] = lambda: None,
    wait_for_quota: bool = False,
    webhook_transport: httpx.BaseTransport | None = None,
) -> Runtime:
    """The broker, actors and (lazily) the app of one process. ``registry=None`` means multiprocess metrics.
    ``stop_on_state_lost``: how this process stops once it found the state lost (see ``StateWatch``).
    ``webhook_transport`` replaces the network of the webhook dispatcher (tests)."""
    metrics = Metrics(registry)
    holder = Holder(
        lambda: build_app(
            settings,
            transport=transport,
            clock=clock,
            observers=[metrics.observe_call],
            on_step=metrics.observe_step,
            on_transfer=metrics.observe_transfer,
            wait_for_quota=wait_for_quota,
        )
    )
    policy = RetryPolicy(
        max_retries=settings.max_retries,
        min_backoff_ms=settings.min_backoff_ms,
        max_backoff_ms=settings.max_backoff_ms,
        auth_retry_delay_ms=settings.auth_retry_delay_ms,
    )
    metrics_middleware = MetricsMiddleware(lambda: metrics)
    delayed_recovery = DelayedMessageRecovery()
    broker = PromptRedisBroker(
        prompt_queues=EVENT_QUEUES,
        idle_poll_ms=settings.idle_poll_ms,
        url=settings.redis_url,
        namespace=dramatiq_namespace(settings.key_prefix),
        **recovery_tuning(settings.recovery_seconds),
        socket_timeout=10,
        socket_connect_timeout=5,
        # dramatiq runs "after" hooks in reverse order: ours come before Retries so that they see its verdict
        # (message.failed, retries) when a message has been processed.
        middleware=[
            CurrentMessage(),
            LogContextMiddleware(),
            metrics_middleware,
            AgeLimit(),
            TimeLimit(time_limit=TIME_LIMIT_MS),
            ShutdownNotifications(),
            Callbacks(),
            Pipelines(),
            DurableRetries(
                max_retries=settings.max_retries,
                min_backoff=settings.min_backoff_ms,
                max_backoff=settings.max_backoff_ms,
                retry_when=policy.retry_when,
            ),
            DeadLetterMiddleware(
                lambda: holder.get().redis, Keys(settings.key_prefix), on_dead=metrics_middleware.on_dead
            ),
            delayed_recovery,
        ],
    )
    watch = StateWatch(
        lambda: holder.get().state,
        on_lost=lambda exc: metrics.state_lost.labels(exc.kind).set(1),
        stop=stop_on_state_lost,
    )
    actors = declare_actors(broker, holder, policy, metrics, watch)
    handoff = Handoff(broker, lambda: holder.get().redis, Keys(settings.key_prefix), EVENT_QUEUES)
    scheduler = DueScheduler(
        lambda: holder.get().due,
        actors.reconcile.send,
        interval_s=scheduler_interval_s,
        clock=clock,
        stale_ms=settings.sweep_stale_seconds * 1000,
        resend_events=handoff.resend_stale,
        recover_delayed=delayed_recovery.recover,
        check_state=watch.check,
        state_halted=lambda: watch.halting,
        erase_expired=None
        if settings.personal_data_retention_days is None
        else RetentionSweep(
            lambda: holder.get().store,
            retention_ms=settings.personal_data_retention_days * 86_400_000,
            lock_ttl_ms=settings.lock_ttl_ms,
        ),
    )
    broker.add_middleware(SchedulerMiddleware(scheduler))
    webhooks = WebhookMiddleware(
        # the app (its Redis client) is built on first use: not at boot when there are no webhooks to send
        lambda: (
            None
            if settings.webhook_url is None
            else build_dispatcher(
                settings,
                holder.get().redis,
                transport=webhook_transport,
                clock=clock,
                observe=metrics.observe_webhook,
                poll_s=min(0.1, scheduler_interval_s),
            )
        )
    )
    broker.add_middleware(webhooks)
    for queue in QUEUES:
        broker.declare_queue(queue)
    return Runtime(settings, broker, actors, holder, metrics, scheduler, handoff, watch, webhooks)
