"""One app per worker process, built on first use (after fork), so nothing connects at import time.

The holder knows nothing of the composition root: ``Holder`` keeps whatever its factory builds, and ``AppHolder``
is the holder as the actors see it, through ``ActorApp``, the few parts of the app they use. ``build_runtime``
fills a ``Holder`` with ``worker.bootstrap.App``, which is an ``ActorApp``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeAlias, TypeVar

from worker.crypto import Keyring
from worker.event_proof import EventProofs
from worker.intake import Intake
from worker.provisioning.reconciler import Reconciler
from worker.sealing import IntakeKeys

__all__ = ["ActorApp", "AppHolder", "Closeable", "Holder"]


class Closeable(Protocol):
    def close(self) -> None:
        """Release what the app holds (connections, pools)."""


class ActorApp(Closeable, Protocol):
    """What the actors take from the process's app: the intake that stores an event, the reconciler, the keys
    that open sealed KYC documents, and the keys that verify an event message's publisher."""

    @property
    def intake(self) -> Intake: ...
    @property
    def reconciler(self) -> Reconciler: ...
    @property
    def intake_keys(self) -> IntakeKeys: ...
    @property
    def keyring(self) -> Keyring: ...
    @property
    def proofs(self) -> EventProofs: ...


AppT_co = TypeVar("AppT_co", bound=Closeable, covariant=True)


class Holder(Generic[AppT_co]):
    """Builds the app with ``factory`` on the first ``get`` (once, whichever thread asks first) and keeps it until
    ``close``."""

    def __init__(self, factory: Callable[[], AppT_co]) -> None:
        self._factory = factory
        self._app: AppT_co | None = None
        self._lock = threading.Lock()

    def get(self) -> AppT_co:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._factory()
        return self._app

    @property
    def built(self) -> bool:
        return self._app is not None

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None


AppHolder: TypeAlias = Holder[ActorApp]
"""The holder as the actors take it."""
