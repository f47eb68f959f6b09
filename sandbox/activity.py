"""Seeded customer activity on live sub-accounts: deposits and trades the broker did not make.

A sub-account with a live key belongs to a customer who can trade with it, and anyone can deposit to it, so its
balance is never evidence of our own transfer (docs/kucoin-api.md §6.13a). This module makes that visible.

Events of one sub-account form a Poisson process of ``activity.rate_per_s`` per second while it holds at least one
live key. The process is applied lazily: ``CustomerActivity.run(state, config, now_ms)`` draws and applies every
event in (last run, now] — ``Exchange`` runs it before every request it handles, before a credit or a config
change, and on ``Exchange.run_activity()`` / ``POST /sandbox/v1/activity``. Eligibility is decided at the run;
keys are issued and deleted only by requests, which run it first, so that is exact. Gaps are exponential draws
(memoryless), so how requests split time does not change the process' law; the exact events are deterministic
for one seed, one clock and one request sequence.

- **deposit** (share ``deposit_share``): a random currency of ``deposit_max``, a random amount in
  (0, ``deposit_max``] rounded down to ``currency_precision``, into MAIN; recorded like the admin credit with
  ``deposit: true`` (deposit list/detail, DEPOSIT ledger entry).
- **trade** (the rest): in TRADE, sell a random fraction in (0, ``max_trade_fraction``] of one held currency
  for another known one at ``BTC_PRICE`` (``sandbox.endpoints.spot``), both amounts rounded down to their
  precision; two TRADE_EXCHANGE ledger entries, no fee. Nothing goes below zero.

An event with nothing to do (no currency held in TRADE, an amount that rounds to zero) is counted as skipped.
Money is ``Decimal`` throughout: random fractions are drawn as integers in millionths.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from decimal import ROUND_DOWN, Decimal

from sandbox.config import SandboxConfig
from sandbox.endpoints.spot import BTC_PRICE
from sandbox.state import ExchangeState, SubAccount
from sandbox.values import IdFactory

__all__ = ["ACTIVITY_KINDS", "CustomerActivity"]

ACTIVITY_KINDS = ("trades", "deposits", "skipped")
"""Counters of ``CustomerActivity.counts`` (shown as ``stats.activity`` in the state)."""
_MILLIONTHS = 1_000_000


def _quantum(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


class CustomerActivity:
    """The activity process of one exchange. Not thread-safe by itself (``Exchange`` holds its lock)."""

    def __init__(self, seed: int, start_ms: int) -> None:
        self._rng = random.Random(f"sandbox-activity:{seed}")
        self._ids = IdFactory(seed, "sandbox-activity")
        self._applied_ms = start_ms
        self.counts: Counter[str] = Counter({kind: 0 for kind in ACTIVITY_KINDS})

    def run(self, state: ExchangeState, config: SandboxConfig, now_ms: int) -> Counter[str]:
        """Apply every event due in (last run, ``now_ms``]; returns what this run did, by kind."""
        start, self._applied_ms = self._applied_ms, max(self._applied_ms, now_ms)
        done: Counter[str] = Counter()
        rate = config.activity.rate_per_s
        if rate <= 0 or now_ms <= start:
            return done
        due: list[tuple[int, int, SubAccount]] = []
        for order, sub in enumerate(state.subaccounts.values()):
            if not state.live_keys(sub.uid):
                continue
            at = start
            while True:
                at += max(1, math.ceil(self._rng.expovariate(rate) * 1000))
                if at > now_ms:
                    break
                due.append((at, order, sub))
        due.sort(key=lambda event: (event[0], event[1]))
        for at, _, sub in due:
            if self._rng.random() < config.activity.deposit_share:
                kind = "deposits" if self._deposit(state, config, sub, at) else "skipped"
            else:
                kind = "trades" if self._trade(state, config, sub, at) else "skipped"
            done[kind] += 1
        self.counts.update(done)
        return done

    def _fraction(self) -> Decimal:
        """A uniform fraction in (0, 1], in millionths."""
        return Decimal(self._rng.randint(1, _MILLIONTHS)) / _MILLIONTHS

    def _deposit(self, state: ExchangeState, config: SandboxConfig, sub: SubAccount, at: int) -> bool:
        currencies = sorted(c for c in config.activity.deposit_max if c in config.currency_precision)
        if not currencies:
            return False
        currency = self._rng.choice(currencies)
        places = config.currency_precision[currency]
        amount = (Decimal(config.activity.deposit_max[currency]) * self._fraction()).quantize(
            _quantum(places), rounding=ROUND_DOWN
        )
        if amount <= 0:
            return False
        state.record_deposit(sub, currency, "MAIN", amount, now_ms=at, tx_hash=self._ids.hex(64))
        return True

    def _trade(self, state: ExchangeState, config: SandboxConfig, sub: SubAccount, at: int) -> bool:
        tradable = sorted(c for c in config.currency_precision if c in BTC_PRICE)
        held = [c for c in tradable if sub.available("TRADE", c) > 0]
        if not held:
            return False
        sell = self._rng.choice(held)
        buy = self._rng.choice([c for c in tradable if c != sell] or [sell])
        if buy == sell:
            return False
        fraction = self._fraction() * Decimal(str(config.activity.max_trade_fraction))
        sell_amount = (sub.available("TRADE", sell) * fraction).quantize(
            _quantum(config.currency_precision[sell]), rounding=ROUND_DOWN
        )
        buy_amount = (sell_amount / Decimal(BTC_PRICE[sell]) * Decimal(BTC_PRICE[buy])).quantize(
            _quantum(config.currency_precision[buy]), rounding=ROUND_DOWN
        )
        if sell_amount <= 0 or buy_amount <= 0:
            return False
        state.trade(
            sub,
            sell=sell,
            sell_amount=sell_amount,
            buy=buy,
            buy_amount=buy_amount,
            now_ms=at,
            order_id=self._ids.object_id(at),
            trade_id=str(int(self._ids.hex(13), 16)),
        )
        return True
