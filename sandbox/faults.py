"""Seeded fault decisions and their counters.

One ``random.Random(seed)`` drives every decision, so a run with the same seed and the same request order
injects the same faults. Per request at most one of ``5xx``, ``drop``, ``429``, ``slow`` is drawn (rates per
kind, optionally overridden per endpoint name); latency applies to every request. A ``429`` draw starts a
burst: all requests of the same (uid, pool) get 429 until the burst ends, without consuming quota.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from sandbox.config import FAULT_KINDS, FaultConfig

__all__ = ["FaultDecision", "FaultInjector"]


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one request. ``kind`` None means no fault; ``burst_reset_ms`` is set for 429s."""

    kind: str | None = None
    status_5xx: int = 500
    drop_as: Literal["timeout", "protocol"] = "protocol"
    burst_reset_ms: int = 0


class FaultInjector:
    """Decides faults from a seeded RNG and counts what it injected. Not thread-safe by itself."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._bursts: dict[tuple[str, str], int] = {}
        self.counts: Counter[str] = Counter()

    def latency_ms(self, faults: FaultConfig) -> int:
        """Latency for the next request: ``latency_ms`` plus uniform jitter in [0, latency_jitter_ms]."""
        if faults.latency_ms == 0 and faults.latency_jitter_ms == 0:
            return 0
        jitter = self._rng.randint(0, faults.latency_jitter_ms) if faults.latency_jitter_ms else 0
        total = faults.latency_ms + jitter
        if total:
            self.counts["latency"] += 1
        return total

    def decide(self, endpoint: str, pool_key: tuple[str, str], faults: FaultConfig, now_ms: int) -> FaultDecision:
        """Draw the fault (if any) for one authenticated request to ``endpoint`` of caller pool ``pool_key``."""
        burst_until = self._bursts.get(pool_key)
        if burst_until is not None:
            if now_ms < burst_until:
                self.counts["429"] += 1
                return FaultDecision(kind="429", burst_reset_ms=burst_until - now_ms)
            del self._bursts[pool_key]
        rates = faults.rates_for(endpoint)
        draw = self._rng.random()
        cumulative = 0.0
        for kind in FAULT_KINDS:
            cumulative += rates[kind]
            if draw < cumulative:
                return self._inject(kind, pool_key, faults, now_ms)
        return FaultDecision()

    def _inject(self, kind: str, pool_key: tuple[str, str], faults: FaultConfig, now_ms: int) -> FaultDecision:
        self.counts[kind] += 1
        if kind == "429":
            if faults.burst_429_ms > 0:
                self._bursts[pool_key] = now_ms + faults.burst_429_ms
            return FaultDecision(kind="429", burst_reset_ms=faults.burst_429_ms)
        if kind == "5xx":
            status = 503 if self._rng.random() < faults.share_503 else 500
            return FaultDecision(kind="5xx", status_5xx=status)
        if kind == "drop":
            drop_as: Literal["timeout", "protocol"] = (
                "timeout" if self._rng.random() < faults.drop_timeout_share else "protocol"
            )
            return FaultDecision(kind="drop", drop_as=drop_as)
        return FaultDecision(kind=kind)
