"""Where an in-process run's CPU goes, by the seam it is spent under.

``Attribution`` wraps a few named functions (the exchange client's call, redis-py's command execution, the state
mirror's ``fdatasync``, the JWE of a delivered key) so that the CPU time of the calling thread (``time.thread_time``)
is charged to the innermost seam active in that thread, and what no seam covers stays with the caller: the rest of
the run's ``process_time`` is our own Python (planning, records, journal, validation, signing scopes). The wrappers
cost about a microsecond per call; the headline figures of ``bench.py`` are measured without them.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Attribution:
    """CPU seconds and call counts per label, each thread's time charged to its innermost active label."""

    def __init__(self) -> None:
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str, label: Callable[..., str]) -> None:
        """Charge ``owner.name``'s time to ``label(*args, **kwargs)`` (undone by ``restore``)."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def charged(*args: Any, **kwargs: Any) -> Any:
            with self._charging(label(*args, **kwargs)):
                return original(*args, **kwargs)

        setattr(owner, name, charged)
        self._undo.append(lambda: setattr(owner, name, original))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    @contextmanager
    def _charging(self, label: str) -> Iterator[None]:
        stack: list[list[Any]] = self._local.__dict__.setdefault("stack", [])
        now = time.thread_time()
        if stack:
            self._charge(stack[-1][0], now - stack[-1][1], call=False)
        stack.append([label, now])
        try:
            yield
        finally:
            now = time.thread_time()
            top = stack.pop()
            self._charge(top[0], now - top[1], call=True)
            if stack:
                stack[-1][1] = now

    def _charge(self, label: str, seconds: float, *, call: bool) -> None:
        with self._lock:
            self.cpu[label] += seconds
            if call:
                self.calls[label] += 1


def attribute_worker_seams(attribution: Attribution, writes: frozenset[str]) -> None:
    """Wrap the seams of the worker's hot path: exchange calls (the ``writes`` endpoints apart from the rest),
    Redis commands and pipelines, the state mirror's ``fdatasync``, the JWE of a delivered key."""
    import redis.client

    from worker.delivery import CredentialSealer
    from worker.exchange.http import KucoinHttp
    from worker.store.epoch import Mirror

    attribution.wrap(
        KucoinHttp,
        "call",
        lambda _self, endpoint, *a, **k: "exchange: the three writes" if endpoint.name in writes else "exchange: reads",
    )
    attribution.wrap(redis.client.Redis, "execute_command", lambda *a, **k: "redis: commands and scripts")
    attribution.wrap(redis.client.Pipeline, "execute", lambda *a, **k: "redis: pipelines")
    attribution.wrap(Mirror, "note", lambda *a, **k: "state mirror: fdatasync")
    attribution.wrap(CredentialSealer, "seal", lambda *a, **k: "JWE of the key")
