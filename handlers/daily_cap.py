"""The Special Account's daily funding cap: on which UTC day a send of a funding line counts. Pure.

Each send of a funding line reserves its amount on that day's cap (``worker.provisioning.money_steps``; the
reservation itself is atomic in ``worker.store.ledger``). A line holds at most one reservation per day, so a
re-send the same day adds nothing, while a re-send after midnight counts on its own day: it may pay then.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

__all__ = ["reservation_day", "utc_day"]


def utc_day(now_ms: int) -> str:
    """The UTC calendar day (``YYYYMMDD``) of ``now_ms`` (epoch milliseconds): the day the ledger counts on."""
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y%m%d")


def reservation_day(days: Collection[str], now_ms: int) -> str | None:
    """The day a send at ``now_ms`` must reserve on, or ``None`` when the line already holds a reservation of that
    day (``days``: the days it reserved on, from its intent)."""
    day = utc_day(now_ms)
    return None if day in days else day
