"""Riders: a shared-state check that goes to Redis inside a customer's commit instead of in a round trip of its own.

A write intent is recorded only once the rate limiter admits its request and, for a funding transfer, once the
day's cap takes its amount. Each of those was a script of its own before the intent's commit; as a rider it runs
in the commit's script, after the lock, state and version checks and before anything of the commit is written, so
that one round trip does all three. A rider that refuses (the limiter says wait, the cap is full) stops the commit
before its first write: nothing of the record, journal or outbound changes, and ``RiderRefused`` says which rider
refused and its answer. What a rider itself wrote stays, as it would have after its own script: a reservation of
the day's cap (idempotent per funding line) when the limiter then says wait, a reserved slot of the rate schedule.

A *soft* rider (only the limiter's) never stops the commit: its answer is returned with the commit's
(``Committed.answers``), for a request the caller may make after the commit or give up (the read of a transfer's
status ahead of its confirm step). Soft riders come after the others, so that one is asked only for a commit that
is written.

The Lua of each rider is a function of ``(KEYS, ARGV)`` defined where its logic lives (``worker.ratelimit``,
``worker.store.ledger``); ``worker.store.customers`` composes them into its commit script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ADMIT", "RESERVE", "Rider", "RiderRefused"]

ADMIT = "admit"
"""Whether the shared rate limiter admits a write's request (``SharedRateLimiter.admit_rider``): refuses with the
wait in milliseconds."""
RESERVE = "reserve"
"""The daily cap's reservation of a funding line (``FundingLedger.reservation``): refuses with its position among
the commit's riders (1 for the first), so the caller knows which day's cap was full when it asked."""


@dataclass(frozen=True)
class Rider:
    """One rider of a commit: its name (``ADMIT`` or ``RESERVE``) and the keys and arguments of its function."""

    name: str
    keys: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    soft: bool = False
    """Answer, never refuse (``ADMIT`` only): the commit is written whatever the limiter says."""


class RiderRefused(Exception):  # noqa: N818 - reads as what happened
    """A rider refused: nothing of the commit was written. ``value``: its answer (the limiter's wait in ms, a
    reservation's position among the riders)."""

    def __init__(self, rider: str, value: int) -> None:
        super().__init__(f"{rider} refused ({value})")
        self.rider = rider
        self.value = value
