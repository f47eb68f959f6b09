"""One ``App`` per worker process, built on first use (after fork), so nothing connects at import time."""

from __future__ import annotations

import threading
from collections.abc import Callable

from worker.bootstrap import App

__all__ = ["AppHolder"]


class AppHolder:
    def __init__(self, factory: Callable[[], App]) -> None:
        self._factory = factory
        self._app: App | None = None
        self._lock = threading.Lock()

    def get(self) -> App:
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
