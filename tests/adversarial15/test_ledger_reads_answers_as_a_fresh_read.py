"""adv15, what held: ``LedgerReads`` (9737fcb) answers every read of a run as a fresh read of the ledger would, for a
ledger that lists each entry at most ``settled_ms`` + ``LEDGER_SKEW_MS`` after its ``createdAt`` (the bound the
judgements already rest on) — randomised over entries listed late up to exactly that bound, entries at the edges of
``final_until`` (±1 ms), ranges inside, before, after and straddling what was read, the clock moving by 0, 1 ms,
the bound ±1 ms and more between reads, directions ``out`` and ``None`` (kept apart), and reads that raise (nothing
kept). Not a break: kept as a property test of the cache's arithmetic."""

from __future__ import annotations

import contextlib
import random

import pytest

from tests.provisioning.test_ledger_reads import DAY_MS, SETTLED_MS, SKEW_MS, Ledger
from worker.exchange.errors import RetryableError
from worker.provisioning.ledger_reads import LedgerReads

EDGES = (-45_000, -45_001, -44_999, 0, 1, -1, -DAY_MS, -DAY_MS - 1)


@pytest.mark.parametrize("block", range(4))
def test_every_read_matches_a_fresh_read_of_a_ledger_within_its_bound(block: int) -> None:
    for seed in range(block * 500, (block + 1) * 500):
        rnd = random.Random(seed)
        ledger = Ledger()
        base = ledger.now_ms
        for n in range(rnd.randint(5, 40)):
            created = base + rnd.randint(-4 * DAY_MS, 600_000)
            if rnd.random() < 0.3:
                created = base + rnd.choice(EDGES)
            lag = rnd.choice([0, SETTLED_MS + SKEW_MS, rnd.randint(0, SETTLED_MS + SKEW_MS)])
            ledger.add(f"e{n}", created, lag_ms=lag)
        reads = LedgerReads(lambda ledger=ledger: ledger, lambda ledger=ledger: ledger.now_ms, settled_ms=SETTLED_MS)
        for step in range(12):
            now = ledger.now_ms
            start = now - rnd.choice([0, 1, 1000, 30_000, 45_000, 45_001, 100_000, DAY_MS, 3 * DAY_MS])
            end = rnd.choice([now, now - rnd.randint(0, 100_000), start + rnd.randint(0, 50_000)])
            start, end = min(start, end), max(start, end)
            direction = rnd.choice(["out", "out", None])
            if rnd.random() < 0.2:
                ledger.fail_next = True  # a read answered from what was read asks nothing and cannot fail
                with contextlib.suppress(RetryableError):
                    reads.ledger_entries(currency="USDT", direction=direction, start_ms=start, end_ms=end)
                ledger.fail_next = False
            got = reads.ledger_entries(currency="USDT", direction=direction, start_ms=start, end_ms=end)
            fresh = [e.id for e, listed in ledger.entries if start <= e.created_at <= end and listed <= now]
            assert sorted(e.id for e in got) == sorted(fresh), (seed, step)
            ledger.now_ms += rnd.choice([0, 1, 500, 10_000, 40_000, 44_999, 45_000, 45_001, 100_000])
