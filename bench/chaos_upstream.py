"""The chaos run's upstream: the signup system that asks for things and hears what happened.

- ``campaign``: N customers' full lifecycles with top-ups (some hitting the per-customer cap, some sent after the
  offboarding on purpose), and the customers of an older system whose sub-accounts are adopted at the recovery.
- ``deliveries``: each event 1–3 times, shuffled within windows (at-least-once, duplicated, re-ordered).
- ``Upstream``: publishes deliveries at a rate through ``worker.publish.Publisher``, retrying while Redis is away,
  and holds a top-up that occurred after its customer's offboarding until that offboarding is stored (so the
  worker has certainly seen it: the top-up must be refused or ignored, never paid); re-publishes everything after
  a state loss.
- ``OutboundReader``: the upstream's consumer of ``{prefix}:outbound``; it keeps every event it read, across a
  loss of the stream (stream ids are times, so reading on from the last id still works on a new stream).
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

__all__ = ["Campaign", "OutboundReader", "Upstream", "campaign", "deliveries", "legacy_events"]

CAP_USDT = 10_000
"""The per-customer USDT cap the chaos run's worker has (the default ``PROVISIONER_FUNDING_CAP_PER_CUSTOMER``)."""


@dataclass
class Campaign:
    events: list[dict[str, Any]]
    late: dict[str, str] = field(default_factory=dict)
    """Top-up event id → the id of the offboarding it comes after (published only once that one is stored)."""
    legacy: list[str] = field(default_factory=list)
    """Customers of an older system: their sub-accounts are adopted at the recovery, their events sent after it."""
    offboarded: set[str] = field(default_factory=set)
    cap_lines: int = 0
    """Top-up lines sized to reach the per-customer cap exactly (paid) or to pass it by one (refused)."""


def _event(customer: str, kind: str, at: datetime, name: str | None = None, **data: Any) -> dict[str, Any]:
    return {
        "id": f"{customer}-{name or kind.split('.')[1]}",
        "type": kind,
        "customer_id": customer,
        "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "data": data,
    }


def campaign(n: int, run: str, rng: random.Random, *, topup_share: float, legacy: int) -> Campaign:
    """Full lifecycles: every customer created and approved (one or two funding lines, sometimes above the cap);
    half change IPs, a third rotate, a third are offboarded, ``topup_share`` get one or two top-ups (some reaching
    or passing the cap), and two in five offboarded customers a top-up after their offboarding; a few are approved
    but never created. ``legacy`` more customers belong to an older system (see ``legacy_events``)."""
    base = datetime.now(UTC) - timedelta(minutes=30)
    plan = Campaign(events=[])
    events = plan.events
    for i in range(n):
        customer = f"{run}-{i:05d}"
        t = base + timedelta(seconds=i)

        def at(offset: float, t: datetime = t) -> datetime:
            return t + timedelta(seconds=offset)

        usdt = rng.choice([10, 25, 100, 250])
        funding = [{"currency": "USDT", "amount": str(usdt)}]
        if rng.random() < 0.2:
            funding.append({"currency": "BTC", "amount": "0.01"})
        if rng.random() < 0.05:
            funding.append({"currency": "USDT", "amount": "20000"})  # above the per-customer cap: refused
        never_created = rng.random() < 0.02
        if not never_created:
            events.append(_event(customer, "customer.created", at(0)))
        events.append(
            _event(
                customer,
                "customer.kyc_approved",
                at(1),
                permissions=rng.choice([["general", "spot"], ["general"], ["general", "spot", "futures"]]),
                ip_whitelist=[f"203.0.114.{rng.randrange(1, 250)}"],
                funding=funding,
            )
        )
        if rng.random() < 0.5:
            events.append(
                _event(
                    customer,
                    "customer.ip_changed",
                    at(2),
                    ip_whitelist=[f"198.51.101.{rng.randrange(1, 250)}", f"192.0.3.{rng.randrange(1, 250)}"],
                )
            )
        if rng.random() < topup_share:
            for k in range(rng.choice([1, 1, 1, 2])):
                lines = [{"currency": "USDT", "amount": str(rng.choice([5, 50, 500]))}]
                if rng.random() < 0.25:
                    # exactly up to the cap (paid) or one past it (refused), given the approval's USDT line
                    lines = [{"currency": "USDT", "amount": str(CAP_USDT - usdt + rng.choice([0, 1]))}]
                    plan.cap_lines += 1
                elif rng.random() < 0.2:
                    lines.append({"currency": "BTC", "amount": "0.02"})
                events.append(
                    _event(customer, "customer.funding_requested", at(2.5 + k / 4), f"topup{k}", funding=lines)
                )
        if rng.random() < 0.33:
            events.append(_event(customer, "customer.key_rotation_requested", at(3)))
        if rng.random() < 0.33:
            offboarding = _event(customer, "customer.offboarded", at(4))
            events.append(offboarding)
            plan.offboarded.add(customer)
            if rng.random() < 0.4:
                late = _event(
                    customer,
                    "customer.funding_requested",
                    at(5),
                    "late",
                    funding=[{"currency": "USDT", "amount": str(rng.choice([7, 70]))}],
                )
                events.append(late)
                plan.late[late["id"]] = offboarding["id"]
    plan.legacy = [f"{run}-legacy{i:03d}" for i in range(legacy)]
    return plan


def legacy_events(customer: str, rng: random.Random, adopted_at: datetime, *, offboard: bool) -> list[dict[str, Any]]:
    """An older system's customer, sent after its sub-account was adopted: created and approved before the adoption
    (that line was the older system's to pay: refused), a top-up after it (paid), and maybe an offboarding."""
    before = adopted_at - timedelta(hours=2)
    after = adopted_at + timedelta(milliseconds=500)
    events = [
        _event(customer, "customer.created", before),
        _event(
            customer,
            "customer.kyc_approved",
            before + timedelta(seconds=1),
            permissions=["general", "spot"],
            ip_whitelist=[f"203.0.114.{rng.randrange(1, 250)}"],
            funding=[{"currency": "USDT", "amount": "100"}],
        ),
        _event(
            customer,
            "customer.funding_requested",
            after,
            "adopted-topup",
            funding=[{"currency": "USDT", "amount": "60"}],
        ),
    ]
    if offboard:
        events.append(_event(customer, "customer.offboarded", after + timedelta(milliseconds=200)))
    return events


def deliveries(events: list[dict[str, Any]], rng: random.Random, window: int = 64) -> list[dict[str, Any]]:
    """Each event 1–3 times, shuffled within windows: at-least-once, duplicated, re-ordered."""
    copies = [e for e in events for _ in range(rng.choice([1, 1, 2, 3]))]
    out = []
    for start in range(0, len(copies), window):
        chunk = copies[start : start + window]
        rng.shuffle(chunk)
        out += chunk
    return out


class Upstream:
    """Publishes queued deliveries at ``rate`` per second (re-publications at ``fast`` times that) in a thread."""

    def __init__(
        self,
        publish: Callable[[str], object],
        stored: Callable[[str, str], bool],
        late: dict[str, str],
        *,
        rate: float,
        fast: float = 4.0,
        gate_timeout_s: float = 300.0,
    ) -> None:
        self._publish = publish
        self._stored = stored
        self._late = late
        self.rate = rate
        self._fast = fast
        self._gate_timeout_s = gate_timeout_s
        self._queue: deque[tuple[dict[str, Any], bool]] = deque()
        self._held: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.published = 0
        self.republished = 0
        self.held_back = 0
        """Times a late top-up was held back because its offboarding was not stored yet."""
        self.sent: dict[str, dict[str, Any]] = {}
        """Every event published at least once, by id (what the checker reads)."""
        self.unsent_late: list[str] = []
        self._thread = threading.Thread(target=self._run, name="upstream", daemon=True)
        self._stop = threading.Event()
        self._closed = threading.Event()

    def start(self, deliveries: list[dict[str, Any]]) -> None:
        self._queue.extend((e, False) for e in deliveries)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + len(self._held)

    def republish(self, events: list[dict[str, Any]]) -> None:
        """After a loss: every event again, ahead of what was still to send, at the fast rate."""
        with self._lock:
            for event in reversed(events):
                self._queue.appendleft((event, True))
            self.republished += len(events)

    def republishing(self) -> int:
        """Re-published events still queued (not yet sent)."""
        with self._lock:
            return sum(1 for _, again in self._queue if again)

    def close(self) -> None:
        """Nothing more will be queued: the thread ends once everything is sent (late top-ups included)."""
        self._closed.set()

    def join(self) -> None:
        self._thread.join()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        idle_since: float | None = None
        while not self._stop.is_set():
            with self._lock:
                item = self._queue.popleft() if self._queue else None
            if item is None:
                if not self._closed.is_set():
                    self._release_held()
                    time.sleep(0.2)
                    continue
                if not self._held:
                    return
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > self._gate_timeout_s:
                    self.unsent_late = [e["id"] for e in self._held]
                    return
                self._release_held()
                time.sleep(0.5)
                continue
            event, fast = item
            offboarding = self._late.get(event["id"])
            if offboarding is not None and not self._gate(event["customer_id"], offboarding):
                self._held.append(event)
                self.held_back += 1
                continue
            self._send(event)
            time.sleep(1 / (self.rate * (self._fast if fast else 1)))
            if self._held and self.published % 20 == 0:
                self._release_held()

    def _release_held(self) -> None:
        for event in list(self._held):
            if self._gate(event["customer_id"], self._late[event["id"]]):
                self._held.remove(event)
                self._send(event)

    def _gate(self, customer: str, offboarding: str) -> bool:
        try:
            return self._stored(customer, offboarding)
        except redis.RedisError:
            return False

    def _send(self, event: dict[str, Any]) -> None:
        while not self._stop.is_set():
            try:
                self._publish(json.dumps(event))
                break
            except (redis.RedisError, OSError):
                time.sleep(0.2)  # Redis is being restarted: publish again (at-least-once)
        self.sent.setdefault(event["id"], event)
        self.published += 1


class OutboundReader:
    """The upstream's consumer of the outbound stream: reads on from the last id it saw, keeps every event."""

    def __init__(self, url: str, stream: str) -> None:
        self._client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2)
        self._stream = stream
        self._last = "0-0"
        self.events: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbound-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def read(self) -> int:
        """Read what is new; returns how many events. Raises ``redis.RedisError``."""
        count = 0
        while True:
            rows = self._client.xrange(self._stream, min=f"({self._last}", count=1000)
            if not rows:
                return count
            for stream_id, fields in rows:
                self.events.append(json.loads(fields["event"]))
                self._last = stream_id
                count += 1

    def stop(self) -> None:
        """Stop the thread and read what is left."""
        self._stop.set()
        self._thread.join(10)
        with contextlib.suppress(redis.RedisError):
            self.read()
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(redis.RedisError):
                self.read()
            self._stop.wait(0.3)
