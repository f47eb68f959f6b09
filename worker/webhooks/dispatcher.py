"""The webhook dispatcher: a thread in every worker process that POSTs each outbound event to
``PROVISIONER_WEBHOOK_URL`` until the receiver answers 2xx, or gives it up after the retry horizon.

One pass: admit new stream entries into their customers' lanes, claim as many due lanes as there are free
delivery threads, and hand each claim to a thread (sharing one httpx connection pool). A thread sends, decides
(``handlers.delivery.decide``) and reports. Several processes (and hosts) share the work through Redis: a claim
is atomic, and only a lane's head is ever in flight, so one customer's events arrive in sequence order.

Failure handling, by where it happens:

=====================================  ===================================================================
what fails                             what happens
=====================================  ===================================================================
the receiver (non-2xx, no answer)      retried with backoff and jitter, honouring Retry-After; dead letter
                                       after the horizon (``provisioner webhooks list|show|retry``)
this process, at any line              the lease ends (``lease_ms``) and any dispatcher sends the head again
Redis (down, restarted)                the pass fails, is logged and tried again; an attempt's report is
                                       retried for half the lease; nothing is lost with AOF
a bug in sending (an exception)        counted as a failed attempt (it cannot stall a lane forever)
=====================================  ===================================================================
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import redis
import structlog

from handlers.delivery import Answer, Delivered, GiveUp, RetryAt, RetryPolicy, decide
from worker.webhooks.sender import Sender
from worker.webhooks.store import Claim, DeliveryStore

__all__ = ["AttemptRecord", "Dispatcher", "lease_ms_for"]

_log = structlog.get_logger(__name__)


def lease_ms_for(timeout_s: float) -> int:
    """How long a claimed head is left to its attempt: far above the longest request (httpx applies the time-out
    to each of pool, connect, write and read) plus a margin; after it, another dispatcher sends it again."""
    return int(4 * timeout_s * 1000) + 10_000


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt, for metrics: its answer, how long it took, and what was decided."""

    answer: Answer
    duration_s: float
    outcome: str
    """``delivered``, ``retry``, ``dead`` or ``stale`` (the lease was lost meanwhile: another attempt owns it)."""


class Dispatcher:
    """Delivers the outbound stream to one URL. ``clock`` is epoch seconds (injectable: tests jump three days);
    ``draw`` is the jitter's random source."""

    def __init__(
        self,
        store: DeliveryStore,
        sender: Sender,
        policy: RetryPolicy,
        *,
        concurrency: int = 16,
        lease_ms: int = 70_000,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
        poll_s: float = 0.1,
        observe: Callable[[AttemptRecord], None] = lambda record: None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.policy = policy
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        self._clock = clock
        self._draw = draw
        self._poll_s = poll_s
        self._observe = observe
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._inflight: set[Future[None]] = set()
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- one pass, in the caller's thread (tests, benchmarks) ------------------------------------------------
    def run_once(self, *, limit: int | None = None) -> int:
        """Admit, claim up to ``limit`` (default: the concurrency) due lanes and deliver them one after the other
        in this thread. Returns how many attempts were made. Raises what Redis raises."""
        now = self.now_ms()
        self.store.admit(now)
        claims = self.store.claim(now, limit=limit or self.concurrency, lease_ms=self.lease_ms, token=_token())
        for claim in claims:
            self.deliver(claim)
        return len(claims)

    def drain(self, *, max_passes: int = 1000) -> int:
        """``run_once`` until nothing is due now. Returns the attempts made."""
        total = 0
        for _ in range(max_passes):
            made = self.run_once()
            total += made
            if made == 0:
                return total
        raise RuntimeError("the dispatcher did not drain")

    def deliver(self, claim: Claim) -> AttemptRecord:
        """One attempt at ``claim``: send, decide, report. Raises only what Redis raises when reporting (the lease
        then ends and the head is sent again)."""
        started = time.perf_counter()
        now = self.now_ms()
        try:
            answer = self.sender.send(claim.event_id, claim.body, now)
        except Exception as exc:  # a bug, not the receiver: still an attempt, so it cannot stall the lane forever
            _log.exception("webhook send failed unexpectedly", event_id=claim.event_id)
            answer = Answer(None, f"internal error: {type(exc).__name__}")
        duration = time.perf_counter() - started
        done = self.now_ms()
        tries = claim.tries.after(answer, done)
        decision = decide(tries, answer, done, self.policy, self._draw())
        if isinstance(decision, Delivered):
            applied, outcome = self._report(lambda: self.store.delivered(claim, done)), "delivered"
        elif isinstance(decision, RetryAt):
            applied, outcome = self._report(lambda: self.store.retry(claim, tries, decision.at_ms, done)), "retry"
        else:
            assert isinstance(decision, GiveUp)
            kind = _event_type(claim.body)
            applied = self._report(lambda: self.store.dead(claim, tries, decision.reason, kind, done))
            outcome = "dead"
            if applied:
                _log.error("webhook delivery given up", event_id=claim.event_id, reason=decision.reason)
        record = AttemptRecord(answer, duration, outcome if applied else "stale")
        _log.debug(
            "webhook attempt",
            event_id=claim.event_id,
            lane=claim.lane,
            status=answer.status,
            error=answer.error or None,
            attempt=tries.attempts,
            outcome=record.outcome,
        )
        self._observe(record)
        return record

    def _report(self, apply: Callable[[], bool]) -> bool:
        """Record an attempt's outcome; while Redis does not answer, try again for up to half the lease (a report
        is applied once: its token is spent by the first that lands), then raise (the lease then ends and the head
        is sent again)."""
        deadline = time.monotonic() + self.lease_ms / 2000
        while True:
            try:
                return apply()
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() >= deadline or self._stop.is_set():
                    raise
                time.sleep(0.5)

    # --- the thread ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="webhook-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop claiming; wait up to ``timeout_s`` for the attempts in flight to report."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _loop(self) -> None:
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="webhook")
        try:
            while not self._stop.is_set():
                try:
                    pause = self._pass(pool)
                except Exception:  # Redis down, say: keep trying, never die
                    _log.exception("webhook dispatcher pass failed")
                    pause = max(self._poll_s, 1.0)
                if pause:
                    self._wake.wait(pause)
                    self._wake.clear()
        finally:
            pool.shutdown(wait=True)

    def _pass(self, pool: ThreadPoolExecutor) -> float:
        """Admit and hand out what is due. Returns how long to wait for (0: go again at once)."""
        now = self.now_ms()
        admitted = self.store.admit(now)
        with self._lock:
            free = self.concurrency - len(self._inflight)
        if free <= 0:
            return self._poll_s  # woken as soon as one finishes
        claims = self.store.claim(now, limit=free, lease_ms=self.lease_ms, token=_token())
        for claim in claims:
            future = pool.submit(self._attempt, claim)
            with self._lock:
                self._inflight.add(future)
            future.add_done_callback(self._finished)
        return 0.0 if len(claims) == free or admitted >= 1000 else self._poll_s

    def _attempt(self, claim: Claim) -> None:
        try:
            self.deliver(claim)
        except Exception:
            _log.exception("webhook attempt could not be recorded; sent again after its lease", event_id=claim.event_id)

    def _finished(self, future: Future[None]) -> None:
        with self._lock:
            self._inflight.discard(future)
        self._wake.set()


def _token() -> str:
    return uuid.uuid4().hex


def _event_type(body: str) -> str:
    try:
        kind = json.loads(body).get("type")
    except (ValueError, AttributeError):
        return "unknown"
    return kind if isinstance(kind, str) else "unknown"
