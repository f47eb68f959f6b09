"""Seeded identifiers and shares, and the canonical amount format: the few values every part of the state uses.

Nothing here holds state beyond a seeded RNG, so ``sandbox.state`` and ``sandbox.ledger`` share them without
importing each other.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterable
from decimal import Decimal

__all__ = ["IdFactory", "fmt_amount", "seeded_fraction"]


def fmt_amount(value: Decimal) -> str:
    """Canonical decimal string without exponent or trailing zeros (``Decimal("1.50")`` -> ``"1.5"``)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


class IdFactory:
    """Seeded identifiers in KuCoin's formats: 9-digit uids, 24-hex ObjectIds, UUID-like secrets.

    ``stream`` separates independent sequences of one seed (the ledger's ids do not shift the uids and orderIds
    a seed gives)."""

    def __init__(self, seed: int, stream: str = "sandbox-ids") -> None:
        self._rng = random.Random(f"{stream}:{seed}")

    def uid(self, taken: Iterable[str]) -> str:
        used = set(taken)
        while True:
            candidate = str(self._rng.randint(100_000_000, 999_999_999))
            if candidate not in used:
                return candidate

    def object_id(self, now_ms: int) -> str:
        """ObjectId-like: 8 hex digits of epoch seconds, then 16 random hex digits."""
        return f"{(now_ms // 1000) & 0xFFFFFFFF:08x}{self._rng.getrandbits(64):016x}"

    def secret(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def hex(self, digits: int) -> str:
        return f"{self._rng.getrandbits(digits * 4):0{digits}x}"


def seeded_fraction(seed: int, *parts: object) -> float:
    """A deterministic number in [0, 1) from the seed and ``parts`` (for shares such as taken names)."""
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
