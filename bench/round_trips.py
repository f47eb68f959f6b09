"""Redis round trips per customer, counted on the wire — a measurement, not a test: it prints a table.

N customers (default 50) each go ``customer.created`` → ``customer.kyc_approved`` with one key and one funding
line, every event accepted and reconciled to completion in this process as the worker's event actor does it
(``Intake.accept`` with the customer's lock, then ``Reconciler.run``; no dramatiq), against the in-process
simulator (no HTTP, no latency, quota out of the way) and the local Redis (``BENCH_REDIS_URL``, default database
2) under a fresh key prefix, deleted after.
It runs twice: with the shared rate limiter and without (``PROVISIONER_RATE_LIMIT=false``).

A round trip is one request written to the Redis connection and its answer read: a command, a script (EVALSHA),
a pipeline or a transaction each count one. Every connection the app's client opens is wrapped, so the status
reads of the prefetch's pool thread and redis-py's own health checks count too. One customer runs first as a
warm-up, not counted (scripts loaded, state established). The breakdown names each round trip by its command —
EVALSHA by the script's Python name (``customers._COMMIT``), a pipeline by its commands — and splits intake (the
event stored, with the customer's lock and snapshot since the intake takes them) from reconcile.

Usage: ``.venv/bin/python bench/round_trips.py [--customers 50] [--trace] [--json]`` (a few seconds).
"""

from __future__ import annotations

import json
import linecache
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import Exchange, SandboxConfig  # noqa: E402
from worker.bootstrap import App, build_app  # noqa: E402
from worker.intake import Accepted  # noqa: E402
from worker.settings import Settings  # noqa: E402

HUGE_QUOTA = 10**9


class Tally:
    """Round trips by phase and label, shared by every connection of one client (thread-safe)."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.counts: Counter[tuple[str, str]] = Counter()
        self.scripts: dict[str, str] = {}
        """Script sha → the Python name it was registered under."""
        self.trace: list[str] | None = None
        """When a list: every round trip's label, in order, with the step it was sent from."""
        self._lock = threading.Lock()

    def label(self, commands: list[tuple[Any, ...]]) -> str:
        names = [self._name(c) for c in commands]
        if len(names) == 1:
            return names[0]
        inner = [n for n in names if n not in ("MULTI", "EXEC")]
        kind = "MULTI" if names[0] == "MULTI" else "PIPE"
        return f"{kind}[{', '.join(inner)}]"

    def _name(self, command: tuple[Any, ...]) -> str:
        name = _text(command[0]).upper()
        if name == "EVALSHA" and len(command) > 1:
            sha = _text(command[1])
            return f"EVALSHA {self.scripts.get(sha, sha[:8])}"
        return name

    def count(self, label: str) -> None:
        with self._lock:
            self.counts[(self.phase, label)] += 1
            if self.trace is not None:
                self.trace.append(f"{self.phase}: {label}  <- {_caller()}")


def _caller() -> str:
    """Who led to the round trip: the innermost frame of a step or of the reconciler, else of any of our modules."""
    frame: Any = sys._getframe(2)
    ours = None
    while frame is not None:
        path = frame.f_code.co_filename
        if str(ROOT) in path and "/.venv/" not in path and not path.endswith("round_trips.py"):
            where = f"{Path(path).stem}.{frame.f_code.co_name}:{frame.f_lineno}"
            ours = ours or where
            if "/worker/provisioning/" in path or "/worker/intake" in path:
                return where if where == ours else f"{where} ({ours})"
        frame = frame.f_back
    return ours or "?"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def counting_client(url: str, tally: Tally) -> redis.Redis:
    """A client like ``worker.bootstrap.redis_client``'s whose connections report every request to ``tally``."""

    class Counting(redis.Connection):
        _pending = ""

        def send_command(self, *args: Any, **kwargs: Any) -> None:
            self._pending = tally.label([args])
            super().send_command(*args, **kwargs)

        def pack_commands(self, commands: Any) -> Any:
            commands = list(commands)
            self._pending = tally.label([tuple(c) for c in commands])
            return super().pack_commands(commands)

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            label, self._pending = self._pending or "?", ""
            super().send_packed_command(command, check_health=check_health)
            tally.count(label)

    pool = redis.ConnectionPool.from_url(
        url,
        connection_class=Counting,
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    client = redis.Redis(connection_pool=pool)
    register = client.register_script

    def named_register(script: Any) -> Any:
        registered = register(script)
        caller = sys._getframe(1)
        line = linecache.getline(caller.f_code.co_filename, caller.f_lineno)
        found = re.search(r"register_script\((\w+)\)", line)
        module = Path(caller.f_code.co_filename).stem
        tally.scripts[registered.sha] = f"{module}.{found.group(1) if found else caller.f_lineno}"
        return registered

    client.register_script = named_register  # type: ignore[method-assign]
    return client


def settings(redis_url: str, prefix: str, *, rate_limit: bool) -> Settings:
    env = {
        "REDIS_URL": redis_url,
        "PROVISIONER_REDIS_PREFIX": prefix,
        "PROVISIONER_ACCOUNT_PREFIX": f"r{uuid.uuid4().hex[:6]}",
        "PROVISIONER_STATE_DIR": os.path.join(tempfile.gettempdir(), "provisioner-bench-state"),
        "PROVISIONER_LISTING_LAG_MS": "1000",
        "PROVISIONER_LEDGER_LAG_MS": "1000",
        "KUCOIN_BROKER_BASE_URL": "http://sandbox",
        "KUCOIN_SPOT_BASE_URL": "http://sandbox",
        "PROVISIONER_BROKER_QUOTA": str(HUGE_QUOTA),
        "PROVISIONER_MANAGEMENT_QUOTA": str(HUGE_QUOTA),
        "PROVISIONER_RATE_LIMIT": "true" if rate_limit else "false",
        "PROVISIONER_LOG_LEVEL": "WARNING",
        "PROVISIONER_FUNDING_CAP_PER_DAY": "USDT=80000000,USDC=1,BTC=1,ETH=1,KCS=1",
    }
    parsed, _ = Settings.from_env(env)
    return parsed


def customer_events(customer: str) -> list[dict[str, Any]]:
    moment = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = {"id": f"{customer}-c", "type": "customer.created", "customer_id": customer, "occurred_at": moment}
    approved = {
        "id": f"{customer}-k",
        "type": "customer.kyc_approved",
        "customer_id": customer,
        "occurred_at": moment,
        "data": {
            "permissions": ["general", "spot"],
            "ip_whitelist": ["203.0.114.10"],
            "funding": [{"currency": "USDT", "amount": "10"}],
        },
    }
    return [{**created, "data": {}}, approved]


@contextmanager
def rig(redis_url: str, *, rate_limit: bool) -> Iterator[tuple[App, Tally]]:
    """The app on a counting client, the in-process simulator (quota out of the way), a fresh key prefix."""
    tally = Tally()
    prefix = f"rt{uuid.uuid4().hex[:8]}"
    exchange = Exchange(SandboxConfig(broker_quota=HUGE_QUOTA, management_quota=HUGE_QUOTA, spot_quota=HUGE_QUOTA))
    app = build_app(
        settings(redis_url, prefix, rate_limit=rate_limit),
        transport=exchange.transport(),
        client=counting_client(redis_url, tally),
    )
    try:
        yield app, tally
    finally:
        app.close()
        forget(redis_url, prefix)


def forget(redis_url: str, prefix: str) -> None:
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(f"{prefix}*", count=5000))
    for i in range(0, len(keys), 5000):
        r.unlink(*keys[i : i + 5000])
    r.close()


def provision(app: App, tally: Tally, customer: str) -> None:
    """Accept and reconcile the customer's two events, one after the other; fail unless it ended provisioned."""
    ref = ""
    for event in customer_events(customer):
        tally.phase, kept = "intake", tally.phase
        # as the worker's event actor does (worker.runtime.actors): the lock is asked for with the event
        accepted = app.intake.accept(event, lock=app.reconciler.lock_for)
        assert isinstance(accepted, Accepted), accepted
        tally.phase, ref = kept, accepted.ref
        app.reconciler.run(ref, taken=accepted.taken)
    was, tally.phase = tally.phase, "check"
    record = app.store.load(ref)
    tally.phase = was
    assert record is not None and record.pending is None, record
    assert len(record.keys) == 1 and len(record.transfers) == 1, record
    assert all(t.status == "committed" for t in record.transfers.values()), record.transfers


def measure(redis_url: str, *, customers: int, rate_limit: bool) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    with rig(redis_url, rate_limit=rate_limit) as (app, tally):
        app.state.establish(ask_exchange=False)
        provision(app, tally, f"{run}-warm")  # scripts loaded, connections opened, caps counted: not counted
        tally.counts.clear()
        tally.phase = "reconcile"
        started = time.perf_counter()
        for i in range(customers):
            provision(app, tally, f"{run}-{i}")
        elapsed = time.perf_counter() - started
        tally.trace = []
        provision(app, tally, f"{run}-traced")
        trace = [t for t in tally.trace if not t.startswith("check")]
    by_label: Counter[str] = Counter()
    by_phase: Counter[str] = Counter()
    for (phase, label), n in tally.counts.items():
        if phase != "check":
            by_label[f"{phase}: {label}"] += n
            by_phase[phase] += n
    for line in trace:  # the traced customer is not one of the N
        by_label[line.split("  <- ")[0]] -= 1
        by_phase[line.split(": ")[0]] -= 1
    return {
        "rate_limit": rate_limit,
        "customers": customers,
        "seconds": round(elapsed, 2),
        "per_customer": round(sum(by_phase.values()) / customers, 2),
        "intake_per_customer": round(by_phase["intake"] / customers, 2),
        "reconcile_per_customer": round(by_phase["reconcile"] / customers, 2),
        "breakdown_per_customer": {k: round(n / customers, 2) for k, n in by_label.most_common()},
        "one_customer": trace,
    }


@click.command()
@click.option("--customers", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
@click.option("--trace", is_flag=True, help="also print one more customer's round trips in order, with their callers")
def main(customers: int, as_json: bool, trace: bool) -> None:
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
    results = [measure(redis_url, customers=customers, rate_limit=on) for on in (True, False)]
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(
            f"rate limiter {'on ' if r['rate_limit'] else 'off'}: {r['per_customer']} round trips per customer "
            f"(intake {r['intake_per_customer']}, reconcile {r['reconcile_per_customer']}; "
            f"{r['customers']} customers in {r['seconds']} s)"
        )
        for label, n in r["breakdown_per_customer"].items():
            print(f"  {n:6.2f}  {label}")
        if trace:
            print("  one customer, in order:")
            for i, line in enumerate(r["one_customer"], 1):
                print(f"  {i:4d}. {line}")


if __name__ == "__main__":
    main()
