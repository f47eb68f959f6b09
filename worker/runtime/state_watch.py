"""What a worker process does about a lost state (``worker.store.epoch``): stop, loudly, and never start over.

``StateWatch.check`` runs on every pass of the due scheduler (one small Redis read); ``StateWatch.lost`` is
also called by the actors when a guarded write refuses. The first time, it logs the reason (CRITICAL), halts
every worker of the deployment (the state's ``halted`` field, which every guarded write checks), sets the gauge
``provisioner_state_lost`` (alert ``StateLost``) and stops this worker through ``stop`` (the dramatiq master is
asked to shut down; its supervisor restarts ``provisioner worker``, which then waits in its halted mode, serving
the metric, until ``provisioner recover`` has run).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from worker.store.epoch import StateGuard, StateLost

__all__ = ["StateWatch"]

_log = structlog.get_logger(__name__)


class StateWatch:
    def __init__(
        self,
        guard: Callable[[], StateGuard],
        *,
        on_lost: Callable[[StateLost], None] = lambda exc: None,
        stop: Callable[[], None] = lambda: None,
    ) -> None:
        self._guard = guard
        self._on_lost = on_lost
        self._stop = stop
        self._done = threading.Event()
        self._halted = threading.Event()

    @property
    def halting(self) -> bool:
        """True from the moment a loss was found (the halt may still be being written)."""
        return self._done.is_set()

    @property
    def halted(self) -> bool:
        """True once a loss was handled: the halt written, the metric set, this worker told to stop."""
        return self._halted.is_set()

    def check(self) -> None:
        """Re-read the state epoch; a loss is handled by ``lost``. Redis errors propagate (the caller retries)."""
        if self._done.is_set():
            return
        try:
            self._guard().check()
        except StateLost as exc:
            self.lost(exc)

    def lost(self, exc: StateLost) -> None:
        """Halt the deployment and stop this worker (once). Never raises."""
        if self._done.is_set():
            return
        self._done.set()
        _log.critical(
            "state lost: halting every worker; run `provisioner recover` to rebuild from the exchange",
            kind=exc.kind,
            reason=exc.reason,
        )
        try:
            self._guard().halt(f"{exc.kind}: {exc.reason}")
            self._on_lost(exc)
        finally:
            self._halted.set()
            self._stop()
