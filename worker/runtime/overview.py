"""One look at everything on-call watches during a campaign or an incident, read from Redis (``provisioner top``).

The figures are the ones Prometheus scrapes, read by the same reader (``RedisCollector``: queues, dead letters,
pending intents, blocked customers, workers, webhook backlog); the lists beside them (which customers are in
flight or blocked, the latest dead letters) and the rate-limit pools come from the stores that own them. Nothing
here writes. ``Overview`` is a plain value, so the view that draws it is a pure function.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from worker.exchange.endpoints import ENDPOINTS
from worker.ratelimit import PoolState, pool_states
from worker.runtime.broker import Runtime
from worker.runtime.metrics_collector import RedisCollector
from worker.runtime.queues import QUEUES

__all__ = ["BlockedStep", "InFlight", "Letter", "Overview", "QueueLine", "Reader", "WebhookBacklog"]


@dataclass(frozen=True)
class QueueLine:
    """A queue: messages waiting (delayed included), the oldest one's age, dead letters."""

    name: str
    waiting: int
    oldest_age_s: float
    dead: int


@dataclass(frozen=True)
class InFlight:
    """A customer with an exchange write whose outcome is not yet known, since ``since_ms``."""

    ref: str
    since_ms: int


@dataclass(frozen=True)
class BlockedStep:
    """A step the exchange refused for good (or that needs a decision: ``manual``), waiting for an operator."""

    ref: str
    step: str
    reason: str
    since_ms: int
    manual: bool


@dataclass(frozen=True)
class Letter:
    """A dead letter, as ``provisioner dlq list`` shows it."""

    message_id: str
    actor: str
    kind: str
    failed_at_ms: int
    reason: str


@dataclass(frozen=True)
class WebhookBacklog:
    """Outbound events not yet delivered, the oldest one's age, and deliveries given up."""

    undelivered: int
    oldest_age_s: float
    dead_letters: int


@dataclass(frozen=True)
class Overview:
    """Everything ``provisioner top`` shows, taken at ``taken_ms``. The lists hold at most the reader's
    ``limit`` entries (oldest first); the counts beside them are whole."""

    taken_ms: int
    prefix: str
    halted: bool
    workers_alive: int
    due_backlog: int
    unstored: int
    queues: tuple[QueueLine, ...]
    in_flight_count: int
    in_flight: tuple[InFlight, ...]
    blocked_count: int
    blocked: tuple[BlockedStep, ...]
    dead_letter_count: int
    dead_letters: tuple[Letter, ...]
    pools: tuple[PoolState, ...]
    webhooks: WebhookBacklog | None
    """``None`` when no webhook is configured (``PROVISIONER_WEBHOOK_URL``)."""


class Reader:
    """Takes ``Overview``s of one deployment (its settings' Redis and key prefix); build once, ``read`` each
    refresh. Raises ``redis.RedisError`` from ``read`` when Redis does not answer."""

    def __init__(self, runtime: Runtime, *, limit: int = 8) -> None:
        self._runtime = runtime
        self._collector = RedisCollector(runtime.settings, list(QUEUES))
        self._limit = limit
        self._pools = sorted({endpoint.pool for endpoint in ENDPOINTS.values()})

    def read(self) -> Overview:
        app = self._runtime.app
        samples: dict[str, dict[tuple[str, ...], float]] = {}
        for family in self._collector.collect():
            for sample in family.samples:
                samples.setdefault(sample.name, {})[tuple(sample.labels.values())] = sample.value

        def one(name: str) -> int:
            return int(samples.get(name, {}).get((), 0))

        queues = tuple(
            QueueLine(
                name=queue,
                waiting=int(samples["provisioner_queue_depth"][(queue,)]),
                oldest_age_s=samples["provisioner_queue_oldest_message_age_seconds"][(queue,)],
                dead=int(samples["provisioner_dead_letters"][(queue,)]),
            )
            for queue in QUEUES
        )
        pending = cast(list[Any], app.redis.zrange(app.keys.pending, 0, self._limit - 1, withscores=True))
        in_flight = tuple(InFlight(ref=_str(ref), since_ms=int(score)) for ref, score in pending)
        blocked: list[BlockedStep] = []
        for ref in cast(list[Any], app.redis.zrange(app.keys.blocked, 0, self._limit - 1)):
            record = app.store.load(_str(ref))
            for step, block in (record.blocked if record else {}).items():
                blocked.append(BlockedStep(_str(ref), step, block.reason, block.at_ms, block.manual))
        letters = self._runtime.dead_letters().list()
        webhooks = None
        if "provisioner_webhook_undelivered" in samples:
            webhooks = WebhookBacklog(
                undelivered=one("provisioner_webhook_undelivered"),
                oldest_age_s=samples["provisioner_webhook_oldest_undelivered_age_seconds"][()],
                dead_letters=one("provisioner_webhook_dead_letters"),
            )
        return Overview(
            taken_ms=int(time.time() * 1000),
            prefix=app.keys.prefix,
            halted=bool(one("provisioner_state_halted")),
            workers_alive=one("provisioner_workers_alive"),
            due_backlog=one("provisioner_due_backlog"),
            unstored=one("provisioner_events_unstored"),
            queues=queues,
            in_flight_count=one("provisioner_intents_pending"),
            in_flight=in_flight,
            blocked_count=one("provisioner_customers_blocked"),
            blocked=tuple(blocked),
            dead_letter_count=len(letters),
            dead_letters=tuple(
                Letter(letter.message_id, letter.actor, letter.kind, letter.failed_at_ms, letter.reason)
                for letter in letters[-self._limit :]
            ),
            pools=tuple(pool_states(app.redis, app.keys, self._pools)),
            webhooks=webhooks,
        )


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
