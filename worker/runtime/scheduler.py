"""The due scheduler: a small thread in every worker process that turns due customers into reconcile messages.

It sleeps until the next customer is due (at most ``interval``), puts back leases whose scheduler died, claims
the customers due now (atomically: no two processes claim the same one), enqueues a ``reconcile_customer``
message for each and releases the claim. Every ``sweep_every_s`` it also runs the stale scan (docs/glossary.md):
re-schedules customers left waiting, re-sends events never stored, requeues delayed messages this process's
consumers dropped and erases the personal data of customers closed past the retention period. Grace
periods, settle waits, KYC checks, rate-limit waits, busy customers and key ages all wake up through it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from worker.store.due import DueSchedule

__all__ = ["DueScheduler", "SchedulerMiddleware"]

_log = structlog.get_logger(__name__)


class DueScheduler:
    def __init__(
        self,
        due: Callable[[], DueSchedule],
        send: Callable[[str], object],
        *,
        interval_s: float = 0.25,
        clock: Callable[[], float] = time.time,
        batch: int = 500,
        sweep_every_s: float = 30.0,
        stale_ms: int = 120_000,
        resend_events: Callable[[int], int] | None = None,
        recover_delayed: Callable[[], int] | None = None,
        check_state: Callable[[], None] | None = None,
        state_halted: Callable[[], bool] = lambda: False,
        erase_expired: Callable[[int], int] | None = None,
    ) -> None:
        self._due = due
        self._send = send
        self._interval = interval_s
        self._clock = clock
        self._batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._identity = f"{socket.gethostname()}:{os.getpid()}"
        self._sweep_every = sweep_every_s
        self._stale_ms = stale_ms
        self._last_sweep = 0.0
        self._resend_events = resend_events
        self._recover_delayed = recover_delayed
        self._check_state = check_state
        self._state_halted = state_halted
        self._erase_expired = erase_expired

    def tick(self) -> int:
        """One pass. Returns how many customers were enqueued (none once the state was found lost)."""
        if self._check_state is not None:
            try:
                self._check_state()
            except Exception as exc:  # Redis or the exchange not answering: the guarded writes still check
                _log.warning("state check failed; trying again", error=str(exc))
        if self._state_halted():
            return 0
        due = self._due()
        now = int(self._clock() * 1000)
        due.heartbeat(self._identity, now)
        if self._clock() - self._last_sweep >= self._sweep_every:
            self._last_sweep = self._clock()
            swept = due.sweep(now, stale_ms=self._stale_ms)
            if swept:
                _log.warning("re-scheduled customers left waiting", customers=swept)
            resent = self._resend_events(self._stale_ms) if self._resend_events else 0
            if resent:
                _log.warning("re-sent events never stored", events=resent)
            recovered = self._recover_delayed() if self._recover_delayed else 0
            if recovered:
                _log.warning("re-queued delayed messages a consumer dropped", messages=recovered)
            self._erase(now)
        due.recover_expired(now)
        sent = 0
        for ref in due.claim_due(now, limit=self._batch):
            self._send(ref)
            due.done(ref)
            sent += 1
        return sent

    def _erase(self, now_ms: int) -> None:
        """Erase the personal data of customers closed past the retention period (``worker.erasure``). A failure
        is logged, never raised: the due customers must still be sent."""
        if self._erase_expired is None:
            return
        try:
            erased = self._erase_expired(now_ms)
        except Exception as exc:
            _log.warning("personal data erasure failed; trying again next sweep", error=f"{type(exc).__name__}")
            return
        if erased:
            _log.info("erased closed customers' personal data (retention)", customers=erased)

    def start(self) -> None:
        self._identity = f"{socket.gethostname()}:{os.getpid()}"  # after fork
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="due-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.tick() >= self._batch
                pause = 0.0 if busy else self._pause()
            except Exception:  # Redis down, say: keep trying, never die
                _log.exception("due scheduler pass failed")
                pause = self._interval
            if pause:
                self._stop.wait(pause)

    def _pause(self) -> float:
        """Sleep until the next customer is due (so a rate-limit wait ends on time), at most one interval."""
        earliest = self._due().earliest_ms()
        if earliest is None:
            return self._interval
        return min(self._interval, max(0.002, earliest / 1000 - self._clock()))


class SchedulerMiddleware(Middleware):
    """Starts the scheduler when a worker boots and stops it when the worker shuts down."""

    def __init__(self, scheduler: DueScheduler) -> None:
        self.scheduler = scheduler

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.scheduler.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.scheduler.stop()
