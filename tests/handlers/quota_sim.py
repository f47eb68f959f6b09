"""A campaign against KuCoin's windows, event by event, in simulated milliseconds: customers each send three
requests in turn (weights 3, 3, 1) through a limiter, to the simulator's own rate limiter (``sandbox.ratelimit``:
windows that start at the first request after a reset), with a one-way latency. Any limiter that answers
``ask`` (wait in ms, 0 = go) and ``hear`` (an answer's headers) can be driven: the pure rules of
``handlers.quota`` and the Lua script of ``worker.ratelimit`` are driven the same way and must agree."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Protocol

from sandbox.ratelimit import RateLimiter

WEIGHTS = (3, 3, 1)
"""Add SubAccount, Add SubAccount API, Transfer."""


class Limiter(Protocol):
    def ask(self, now: int, who: str, weight: int, *, urgent: bool) -> int: ...

    def hear(self, now: int, *, limit: int, remaining: int, reset_ms: int, refused: bool) -> None: ...


@dataclass
class Outcome:
    finished_ms: int
    refused: int
    sent_weight: int
    asks: int
    waits: list[int] = field(default_factory=list)
    """Every answer of the limiter, in order (for comparing two limiters)."""


def campaign(
    limiter: Limiter,
    *,
    customers: int,
    quota: int,
    window_ms: int = 30_000,
    latency_ms: int = 100,
    start_ms: int = 1_000_000,
    foreign: tuple[tuple[int, int], ...] = (),
    urgent: frozenset[int] = frozenset(),
) -> Outcome:
    """Run the campaign from ``start_ms``; ``foreign`` requests (at ms, weight) use the same key without the limiter
    (someone else); customers in ``urgent`` ask in the urgent lane. Returns when every customer is done."""
    exchange = RateLimiter()
    events: list[tuple[int, int, str, int]] = []  # (at, order, kind, customer)
    order = 0

    def push(at: int, kind: str, who: int) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, kind, who))

    for i in range(customers):
        push(start_ms, "ask", i)
    for k, (at, weight) in enumerate(foreign):
        push(at, f"foreign:{weight}", -1 - k)
    step = dict.fromkeys(range(customers), 0)
    answers: dict[int, tuple[int, int, int]] = {}
    out = Outcome(finished_ms=start_ms, refused=0, sent_weight=0, asks=0)
    while events:
        now, _, kind, who = heapq.heappop(events)
        if kind.startswith("foreign:"):
            exchange.consume("broker", "Broker", int(kind.split(":")[1]), quota=quota, window_ms=window_ms, now_ms=now)
            continue
        weight = WEIGHTS[step[who]]
        if kind == "ask":
            out.asks += 1
            wait = limiter.ask(now, f"c{who}", weight, urgent=who in urgent)
            out.waits.append(wait)
            if wait == 0:
                push(now + latency_ms, "arrive", who)
            else:
                push(now + wait, "ask", who)
        elif kind == "arrive":
            status = exchange.consume("broker", "Broker", weight, quota=quota, window_ms=window_ms, now_ms=now)
            if status.allowed:
                out.sent_weight += weight
            else:
                out.refused += 1
            push(now + latency_ms, "answer" if status.allowed else "refused", who)
            answers[who] = (status.limit, status.remaining, status.reset_ms)
        else:
            limit, remaining, reset_ms = answers.pop(who)
            limiter.hear(now, limit=limit, remaining=remaining, reset_ms=reset_ms, refused=kind == "refused")
            if kind == "refused":
                push(now, "ask", who)
                continue
            step[who] += 1
            if step[who] < len(WEIGHTS):
                push(now, "ask", who)
            else:
                out.finished_ms = max(out.finished_ms, now)
    return out
