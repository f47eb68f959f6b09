"""Building the dispatcher from settings, and running it in every worker process (``WebhookMiddleware``).

The dispatcher runs inside ``provisioner worker`` (no Procfile line of its own): each worker process starts one
after it boots (after the fork, so each has its own connections) and stops it at shutdown. Several dispatchers
share the work through Redis (see ``worker.webhooks.store``). Without ``PROVISIONER_WEBHOOK_URL`` there is none
and the outbound stream is the only way out.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import dramatiq
import httpx
import redis
import structlog
from dramatiq.middleware import Middleware

from handlers.delivery import RetryPolicy
from worker.settings import Settings
from worker.store.keys import Keys
from worker.webhooks.dispatcher import AttemptRecord, Dispatcher, lease_ms_for
from worker.webhooks.sender import Sender, http_client
from worker.webhooks.signing import Signer
from worker.webhooks.store import DeliveryStore

__all__ = ["WebhookMiddleware", "build_dispatcher", "retry_policy"]

_log = structlog.get_logger(__name__)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        min_backoff_ms=settings.webhook_min_backoff_ms,
        max_backoff_ms=settings.webhook_max_backoff_ms,
        horizon_ms=settings.webhook_retry_horizon_seconds * 1000,
    )


def build_dispatcher(
    settings: Settings,
    client: redis.Redis,
    *,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    observe: Callable[[AttemptRecord], None] = lambda record: None,
    poll_s: float = 0.1,
    draw: Callable[[], float] = random.random,
) -> Dispatcher | None:
    """The dispatcher for ``PROVISIONER_WEBHOOK_URL``, or ``None`` when it is unset. ``transport`` replaces the
    network (tests)."""
    if settings.webhook_url is None:
        return None
    signer = Signer.parse(settings.secret("webhook_secret"))
    http = http_client(
        timeout_s=settings.webhook_timeout_seconds, connections=settings.webhook_concurrency, transport=transport
    )
    return Dispatcher(
        DeliveryStore(client, Keys(settings.key_prefix)),
        Sender(http, settings.webhook_url, signer),
        retry_policy(settings),
        concurrency=settings.webhook_concurrency,
        lease_ms=lease_ms_for(settings.webhook_timeout_seconds),
        clock=clock,
        poll_s=poll_s,
        observe=observe,
        draw=draw,
    )


class WebhookMiddleware(Middleware):
    """Starts the dispatcher when a worker boots and stops it when the worker shuts down. The hook only starts a
    thread, which builds the dispatcher (``factory``, after the fork) and runs it: dramatiq's master waits for every
    worker's boot hooks before it watches its workers, so a hook must not take time. A dispatcher that cannot be
    built is logged and tried again (never raised): the worker keeps provisioning and the events wait on the stream
    (the oldest-undelivered alert fires)."""

    RETRY_BUILD_S = 5.0

    def __init__(self, factory: Callable[[], Dispatcher | None]) -> None:
        self._factory = factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dispatcher: Dispatcher | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._boot, name="webhook-boot", daemon=True)
        self._thread.start()

    def _boot(self) -> None:
        while not self._stop.is_set():
            try:
                dispatcher = self._factory()
            except Exception:
                _log.exception("webhook dispatcher could not be built; trying again")
                self._stop.wait(self.RETRY_BUILD_S)
                continue
            with self._lock:
                if dispatcher is not None and not self._stop.is_set():
                    dispatcher.start()
                    self.dispatcher = dispatcher
            return

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            if self.dispatcher is not None:
                self.dispatcher.stop()
                self.dispatcher = None
