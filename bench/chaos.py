"""The chaos run: record what was asked, break things on purpose, then check the invariants.

N customers with full lifecycles; each event published 1–3 times and shuffled within a window; several worker
processes, one of them killed with SIGKILL at random moments and restarted, all of them SIGTERMed once; the
simulator injecting latency, 5xx, commit-then-drop, 429 bursts and slow responses; one Redis kill -9 and
restart mid-run with the persistence the README recommends (AOF, appendfsync always). Then it waits for
convergence, runs the invariant checker (``worker.verify``), greps every log line, metric and Redis value for
every secret the simulator issued, and prints the figures. Exit status 1 on any violation or leak.

    .venv/bin/python bench/chaos.py                       # 1 000 customers, 10 % faults
    .venv/bin/python bench/chaos.py --customers 50 --kills 2 --quick    # the CI size
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from sandbox import Exchange, SandboxConfig, start_server  # noqa: E402
from tests.private_redis import PrivateRedis, free_port  # noqa: E402
from worker.runtime.broker import QUEUES, build_runtime  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.verify import check, read_events  # noqa: E402


def log(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)


class Worker:
    """One ``provisioner worker --processes 1`` with its own metrics port and log file."""

    def __init__(self, index: int, env: dict[str, str], logdir: Path, threads: int) -> None:
        self.index = index
        self.port = free_port()
        self.env = {**env, "PROVISIONER_METRICS_PORT": str(self.port)}
        self.log = logdir / f"worker-{index}.log"
        self.threads = threads
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--processes", "1", "--threads", str(self.threads)],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def children(self) -> list[int]:
        assert self.proc is not None
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    threads = len(list((entry / "task").iterdir()))
                except OSError:
                    continue
                if int(stat[1]) == self.proc.pid and threads > 3:
                    found.append(int(entry.name))
        return found

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the whole process group (master and worker processes), if it is still running."""
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def wait(self, timeout: float = 90) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def scrape(self) -> str:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return ""


def lifecycles(n: int, run: str, rng: random.Random) -> list[dict[str, Any]]:
    """Full lifecycles: every customer created and approved (one or two funding lines, sometimes above the cap);
    half change IPs, a third rotate, a third are offboarded; a few are approved but never created."""
    base = datetime.now(UTC) - timedelta(minutes=30)
    events = []
    for i in range(n):
        customer = f"{run}-{i:05d}"
        t = base + timedelta(seconds=i)

        def ev(kind: str, offset: int, customer: str = customer, t: datetime = t, **data: Any) -> dict[str, Any]:
            return {
                "id": f"{customer}-{kind.split('.')[1]}-{offset}",
                "type": kind,
                "customer_id": customer,
                "occurred_at": (t + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data": data,
            }

        funding = [{"currency": "USDT", "amount": str(rng.choice([10, 25, 100, 250]))}]
        if rng.random() < 0.2:
            funding.append({"currency": "BTC", "amount": "0.01"})
        if rng.random() < 0.05:
            funding.append({"currency": "USDT", "amount": "20000"})  # above the per-customer cap: refused
        never_created = rng.random() < 0.02
        if not never_created:
            events.append(ev("customer.created", 0))
        events.append(
            ev(
                "customer.kyc_approved",
                1,
                permissions=rng.choice([["general", "spot"], ["general"], ["general", "spot", "futures"]]),
                ip_whitelist=[f"203.0.113.{rng.randrange(1, 250)}"],
                funding=funding,
            )
        )
        if rng.random() < 0.5:
            events.append(
                ev(
                    "customer.ip_changed",
                    2,
                    ip_whitelist=[f"198.51.100.{rng.randrange(1, 250)}", f"192.0.2.{rng.randrange(1, 250)}"],
                )
            )
        if rng.random() < 0.33:
            events.append(ev("customer.key_rotation_requested", 3))
        if rng.random() < 0.33:
            events.append(ev("customer.offboarded", 4))
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


@click.command()
@click.option("--customers", default=1000, show_default=True)
@click.option("--workers", "worker_count", default=3, show_default=True)
@click.option("--threads", default=8, show_default=True)
@click.option("--fault-rate", default=0.10, show_default=True, help="Combined simulator fault rate.")
@click.option("--kills", default=6, show_default=True, help="SIGKILLs of a worker process.")
@click.option(
    "--client-oid",
    type=click.Choice(["dedupe", "reject", "accept"]),
    default="reject",
    show_default=True,
    help="The simulator's answer to a repeated clientOid.",
)
@click.option("--seed", default=1, show_default=True)
@click.option(
    "--publish-rate",
    default=0.0,
    show_default=True,
    help="Deliveries per second (default: spread over the chaos actions, so they happen mid-stream).",
)
@click.option("--timeout", default=1800, show_default=True, help="Seconds to wait for convergence.")
@click.option("--quick", is_flag=True, help="Shorter waits between chaos actions (the CI size).")
@click.option("--out", default="bench/results/chaos.json", show_default=True)
def main(
    customers: int,
    worker_count: int,
    threads: int,
    fault_rate: float,
    kills: int,
    client_oid: str,
    seed: int,
    publish_rate: float,
    timeout: int,
    quick: bool,
    out: str,
) -> None:
    """Run the chaos scenario and check the invariants."""
    rng = random.Random(seed)
    run = f"chaos{uuid.uuid4().hex[:6]}"
    logdir = Path(tempfile.mkdtemp(prefix="chaos-logs-"))
    rate = fault_rate / 4
    config = SandboxConfig.from_dict(
        {
            "seed": seed,
            "broker_quota": 40_000,
            "duplicate_client_oid": client_oid,
            "faults": {
                "latency_ms": 10,
                "latency_jitter_ms": 20,
                "rate_5xx": rate,
                "rate_drop": rate,
                "rate_429": rate,
                "rate_slow": rate,
                "slow_ms": 3000,
                "burst_429_ms": 300,
            },
        }
    )
    exchange = Exchange(config)
    store = PrivateRedis()
    figures: dict[str, Any] = {
        "customers": customers,
        "workers": worker_count,
        "threads": threads,
        "fault_rate": fault_rate,
        "client_oid": client_oid,
        "seed": seed,
    }
    workers: list[Worker] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    store.start()
    try:
        with start_server(exchange) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("KUCOIN_", "PROVISIONER_", "PROMETHEUS"))}
            env.update(
                {
                    "REDIS_URL": store.url,
                    "PROVISIONER_REDIS_PREFIX": run,
                    "KUCOIN_BROKER_BASE_URL": server.url,
                    "KUCOIN_SPOT_BASE_URL": server.url,
                    "KUCOIN_HTTP_CONNECT_TIMEOUT": "1",
                    "KUCOIN_HTTP_READ_TIMEOUT": "2",
                    "KUCOIN_HTTP_WRITE_TIMEOUT": "1",
                    "KUCOIN_HTTP_POOL_TIMEOUT": "1",
                    "PROVISIONER_UNKNOWN_OUTCOME_SETTLE_MS": "2000",
                    "PROVISIONER_RECOVERY_SECONDS": "10",
                    "PROVISIONER_LOCK_TTL_MS": "10000",
                    "PROVISIONER_ROTATION_GRACE_SECONDS": "2",
                    "PROVISIONER_BROKER_QUOTA": "40000",
                    "PROVISIONER_MIN_BACKOFF_MS": "200",
                    "PROVISIONER_MAX_BACKOFF_MS": "5000",
                    "PROVISIONER_MAX_RETRIES": "20",
                    "PROVISIONER_SWEEP_STALE_SECONDS": "20",
                    "PROVISIONER_LOG_FORMAT": "json",
                    "PROVISIONER_LOG_LEVEL": "INFO",
                    "PROVISIONER_FUNDING_CAP_PER_DAY": "USDT=10000000,BTC=1000,ETH=1,USDC=1,KCS=1",
                }
            )
            settings, _ = Settings.from_env(env)
            runtime = build_runtime(settings, registry=CollectorRegistry())
            publisher = runtime.publisher()
            workers.extend(Worker(i, env, logdir, threads) for i in range(worker_count))
            for w in workers:
                w.start()
            events = lifecycles(customers, run, rng)
            plan = deliveries(events, rng)
            events_path = logdir / "events.jsonl"
            events_path.write_text("".join(json.dumps(e) + "\n" for e in plan))
            figures |= {"events": len(events), "deliveries": len(plan)}
            log(f"{customers} customers, {len(events)} events, {len(plan)} deliveries; logs in {logdir}")

            pause = (3, 8) if quick else (8, 20)
            if publish_rate <= 0:
                publish_rate = len(plan) / ((kills + 2) * sum(pause) / 2 * 0.9)
            log(f"publishing at {publish_rate:.0f} deliveries/s")
            progress = {"published": 0}
            chaos = Counter()
            started = time.monotonic()

            def publish_all() -> None:
                for event in plan:
                    while True:
                        try:
                            publisher.publish(json.dumps(event))
                            break
                        except (redis.RedisError, OSError):
                            time.sleep(0.2)  # Redis is being restarted: publish again (at-least-once)
                    progress["published"] += 1
                    time.sleep(1 / publish_rate)

            def supervise() -> None:
                """A process manager: restarts a worker whose master exited (dramatiq stops when a process dies)."""
                while not stop.is_set():
                    for w in workers:
                        if not w.alive() and not getattr(w, "held", False):
                            w.wait(1)
                            w.start()
                            chaos["restarts"] += 1
                    stop.wait(0.5)

            publisher_thread = threading.Thread(target=publish_all, daemon=True)
            supervisor = threading.Thread(target=supervise, daemon=True)
            publisher_thread.start()
            supervisor.start()
            total = len(plan)
            done_term = done_redis = False
            while chaos["kills"] < kills or not done_term or not done_redis:
                time.sleep(rng.uniform(*pause))
                share = progress["published"] / total
                if not done_term and share >= 0.4:
                    log("SIGTERM to every worker")
                    for w in workers:
                        w.held = True  # type: ignore[attr-defined]
                        w.terminate()
                    for w in workers:
                        w.wait()
                        w.start()
                        w.held = False  # type: ignore[attr-defined]
                    chaos["sigterms"] += 1
                    done_term = True
                elif not done_redis and share >= 0.6:
                    log("kill -9 Redis, restart it from its AOF")
                    store.kill()
                    time.sleep(2)
                    store.start()
                    chaos["redis_restarts"] += 1
                    done_redis = True
                elif chaos["kills"] < kills:
                    victim = rng.choice(workers)
                    pids = victim.children()
                    if pids:
                        os.kill(rng.choice(pids), signal.SIGKILL)
                        chaos["kills"] += 1
                        log(f"kill -9 worker {victim.index} ({chaos['kills']}/{kills}), {share:.0%} published")
            publisher_thread.join()
            published_at = time.monotonic()
            log(f"all {total} deliveries published after {published_at - started:.0f}s; waiting for convergence")
            violations, converged_at = converge(runtime, events_path, server.url, exchange, settings, timeout)
            stop.set()
            figures |= {
                "chaos": dict(chaos),
                "violations": [v.__dict__ for v in violations],
                "publish_s": round(published_at - started, 1),
                "converge_after_publish_s": round(converged_at - published_at, 1) if converged_at else None,
                "total_s": round((converged_at or time.monotonic()) - started, 1),
            }
            state = exchange.state_snapshot()
            figures["exchange_calls"] = sum(state["stats"]["requests"].values())
            figures["faults_injected"] = state["stats"]["faults"]
            figures["exchange_429s"] = state["stats"]["rateLimited"]
            figures["dead_letters"] = [d.summary() for d in runtime.dead_letters().list()]
            metrics_text = "\n".join(w.scrape() for w in workers)
            _stop_workers(workers)
            figures |= scan_logs(logdir, worker_count)
            figures["secret_hits"] = secret_hits(exchange, settings, store.url, logdir, metrics_text)
            runtime.close()
    finally:
        # whatever ended the run (an error, SIGTERM, a closed stdout), leave no worker or Redis running
        stop.set()
        for w in workers:
            w.kill()
        store.stop()
    report(figures, out)
    sys.exit(1 if figures["violations"] or figures["secret_hits"] or figures["converge_after_publish_s"] is None else 0)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _stop_workers(workers: list[Worker]) -> None:
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait()


def converge(
    runtime: Any, events_path: Path, sandbox_url: str, exchange: Exchange, settings: Settings, timeout: float
) -> tuple[list[Any], float | None]:
    """Wait until nothing is in flight, then check; keep checking until clean or out of time."""
    from cli.verify_cmd import key_probe

    app = runtime.app
    deadline = time.monotonic() + timeout
    violations: list[Any] = []
    while time.monotonic() < deadline:
        try:
            busy = _in_flight(runtime)
        except redis.RedisError:
            time.sleep(1)
            continue
        if busy:
            time.sleep(2)
            continue
        # The system is quiet: stop the faults so the checker's own reads (key probes) are not broken.
        exchange.update_config(
            {
                "faults": {
                    "rate_5xx": 0,
                    "rate_drop": 0,
                    "rate_429": 0,
                    "rate_slow": 0,
                    "latency_ms": 0,
                    "latency_jitter_ms": 0,
                }
            }
        )
        letters = [d.summary() for d in runtime.dead_letters().list()]
        with events_path.open() as lines:
            violations = check(
                read_events(lines),
                exchange.state_snapshot(),
                app.store.load,
                lambda ref: app.store.journal(ref, count=100_000),
                naming=app.policy.naming,
                keyring=app.keyring,
                probe=key_probe(sandbox_url),  # type: ignore[arg-type]
                funding_caps=settings.funding_cap_per_customer,
                dead_letters=letters,
            )
        if not violations:
            return [], time.monotonic()
        log(f"{len(violations)} violation(s) still; e.g. {violations[0]}")
        time.sleep(5)
    return violations, None


def _in_flight(runtime: Any) -> int:
    app = runtime.app
    r = app.redis
    ns = runtime.broker.namespace
    now = int(time.time() * 1000)
    queued = sum(r.llen(f"{ns}:{q}") + r.llen(f"{ns}:{q}.DQ") for q in QUEUES)
    return int(
        queued
        + r.zcard(app.keys.pending)
        + r.zcard(app.keys.inbox)
        + r.zcount(app.keys.due, "-inf", now + 10_000)
        + r.zcard(f"{app.keys.due}:inflight")
        + sum(r.zcard(app.keys.handoff(q)) for q in QUEUES)
    )


def scan_logs(logdir: Path, workers: int) -> dict[str, Any]:
    """Retries, tracebacks and criticals from the workers' JSON logs."""
    retries = failures = criticals = tracebacks = lines = 0
    for path in logdir.glob("worker-*.log"):
        for raw in path.read_text(errors="replace").splitlines():
            lines += 1
            try:
                entry = json.loads(raw)
            except ValueError:
                tracebacks += raw.startswith("Traceback")
                continue
            if entry.get("event") == "message failed":
                failures += 1
                retries += bool(entry.get("will_retry"))
            criticals += entry.get("level") == "critical"
    return {
        "log_lines": lines,
        "message_failures": failures,
        "retries": retries,
        "critical_logs": criticals,
        "raw_tracebacks": tracebacks,
    }


def secret_hits(exchange: Exchange, settings: Settings, redis_url: str, logdir: Path, metrics: str) -> list[str]:
    """Every secret and passphrase the simulator issued, and ours, searched in logs, metrics and all of Redis."""
    from tests.security.scan import hits, redis_values

    secrets = [v for k in exchange.state.api_keys.values() for v in (k.secret, k.passphrase)]
    secrets += [
        settings.secret(n)
        for n in (
            "api_secret",
            "api_passphrase",
            "broker_key",
            "trading_api_secret",
            "trading_api_passphrase",
            "name_secret",
        )
    ]
    haystacks: list[tuple[str, str]] = [(p.name, p.read_text(errors="replace")) for p in logdir.glob("worker-*.log")]
    haystacks.append(("metrics", metrics))
    client = redis.Redis.from_url(redis_url)
    haystacks += list(redis_values(client, [""]))
    client.close()
    log(f"searched {len(haystacks)} log files/metrics/Redis values for {len(secrets)} secrets")
    return hits(secrets, haystacks)


def report(figures: dict[str, Any], out: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(figures, indent=2, default=str) + "\n")
    rows = [
        ("customers / events / deliveries", f"{figures['customers']} / {figures['events']} / {figures['deliveries']}"),
        ("workers x threads", f"{figures['workers']} x {figures['threads']}"),
        ("exchange calls", figures["exchange_calls"]),
        ("faults injected", json.dumps(figures["faults_injected"], sort_keys=True)),
        ("exchange 429s", figures["exchange_429s"]),
        ("chaos", json.dumps(figures["chaos"], sort_keys=True)),
        ("message failures / retries", f"{figures['message_failures']} / {figures['retries']}"),
        ("dead letters", len(figures["dead_letters"])),
        ("publish time", f"{figures['publish_s']} s"),
        ("converged after last publish", f"{figures['converge_after_publish_s']} s"),
        ("secret hits", len(figures["secret_hits"])),
        ("violations", len(figures["violations"])),
    ]
    click.echo("")
    for name, value in rows:
        click.echo(f"{name:>32}  {value}")
    for v in figures["violations"][:20]:
        click.echo(f"  VIOLATION {v['customer']}: {v['invariant']}: {v['detail']}")
    for hit in figures["secret_hits"][:20]:
        click.echo(f"  SECRET FOUND {hit}")
    click.echo(f"\nwrote {out}")


if __name__ == "__main__":
    main()
