"""Reading a just-accepted transfer's status while the run goes on with the customer's next write.

A transfer is committed only once Get Transfer History says SUCCESS (``money_steps.confirm_transfer``): a fourth
sequential exchange call after Add SubAccount, Transfer and Add SubAccount API, although nothing waits for its
answer but the commit. ``StatusPrefetch`` starts that read on a thread of its own as soon as the orderId is
recorded; the confirm step takes the answer when it comes to it (usually after the key was issued), so a
customer is ready after three calls' time instead of four.

Only a read is moved, never a write, and only a final answer is used: SUCCESS and FAILURE never change, so a
status read after the orderId was recorded is as good as one read at confirm time. PROCESSING, an error, a read
still waiting for a thread, or no read at all: the confirm step reads again itself, as it always did. Nothing is
shared between processes: a prefetch started by a run that dies is simply lost.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import structlog

from worker.exchange.models import TransferDetail

__all__ = ["StatusPrefetch"]

log = structlog.get_logger(__name__)

FINAL = frozenset({"SUCCESS", "FAILURE"})
"""Statuses that never change: the only answers a prefetched read may stand for."""


class StatusPrefetch:
    """Prefetched Get Transfer History answers by orderId, per process.

    ``threads`` reads run at once; ``keep`` answers are kept for ``take`` at most (the oldest are dropped).
    Thread-safe; the pool is created in the process that first uses it (a forked worker gets its own)."""

    def __init__(self, *, threads: int = 8, keep: int = 1024) -> None:
        self._threads = threads
        self._keep = keep
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, Future[TransferDetail]] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._closed = False

    def start(self, order_id: str, read: Callable[[], TransferDetail]) -> None:
        """Begin ``read()`` (Get Transfer History of ``order_id``) on a pool thread; after ``close`` nothing is
        begun (the confirm step reads itself). Never raises."""
        try:
            with self._lock:
                if self._closed:
                    return
                if self._pool is None or self._pool_pid != os.getpid():
                    self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="transfer-status")
                    self._pool_pid = os.getpid()
                    self._pending.clear()
                self._pending[order_id] = self._pool.submit(read)
                self._pending.move_to_end(order_id)
                while len(self._pending) > self._keep:
                    _, dropped = self._pending.popitem(last=False)
                    dropped.cancel()
        except RuntimeError:  # the pool is shutting down (the process is stopping): the confirm reads itself
            return

    def ready(self, order_id: str) -> bool:
        """Whether a read of ``order_id`` has ended (``take`` would not wait): answered, failed or cancelled."""
        with self._lock:
            future = self._pending.get(order_id)
        return future is not None and future.done()

    def take(self, order_id: str, *, wait_s: float) -> TransferDetail | None:
        """The final answer prefetched for ``order_id``, waiting up to ``wait_s`` for a read already on the wire;
        ``None`` where there is none to use (not started, not yet begun — then it is cancelled — failed, timed
        out or not final). Never raises: the caller then reads the status itself."""
        with self._lock:
            future = self._pending.pop(order_id, None)
        if future is None or future.cancel():
            return None
        try:
            detail = future.result(timeout=wait_s)
        except FutureTimeout:
            return None
        except Exception as exc:  # any failure of the read only means "read it again"
            log.debug("prefetched transfer status unusable", order_id=order_id, error=type(exc).__name__)
            return None
        return detail if str(detail.status) in FINAL else None

    def close(self) -> None:
        """Stop the pool without waiting for reads in flight (their answers are dropped); nothing starts again."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._closed = True
            self._pending.clear()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
