"""The chaos run: record what was asked, break things on purpose, then check the invariants.

N customers with full lifecycles and top-ups (``bench/chaos_upstream.py``); each event published 1–3 times and
shuffled within a window; several worker processes, one of them killed with SIGKILL at random moments and
restarted, all of them SIGTERMed once; the simulator injecting latency, 5xx, commit-then-drop, 429 bursts and slow
responses, with customers trading and depositing on every sub-account that has a live key, transfers that fail
after acceptance, and ledger and listing lags; one Redis kill -9 and restart with the persistence the README
recommends (AOF, appendfsync always); then a **loss of Redis' state** mid-stream (restarted without persistence,
or the keys flushed): the workers must halt, send nothing, and wait; the on-call runs ``provisioner recover``
(adopting an older system's sub-accounts), the upstream re-publishes every event, and the on-call decides the
transfers the exchange's records leave undecidable from the simulator's truth (``bench/chaos_oncall.py``).
Then it waits for convergence, runs the invariant checker (``worker.verify``, with everything the upstream read
from the outbound stream), greps every log line, metric and Redis value for every secret the simulator issued,
and prints the figures. Exit status 1 on any violation or leak.

    .venv/bin/python bench/chaos.py                       # 1 000 customers, 10 % faults, reject, state loss
    .venv/bin/python bench/chaos.py --client-oid accept --ledger-context none    # the on-call decides
    .venv/bin/python bench/chaos.py --customers 50 --kills 2 --quick    # the CI size
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaos_oncall import OnCall, declare_republished, recover  # noqa: E402
from chaos_upstream import (  # noqa: E402
    OutboundReader,
    Upstream,
    campaign,
    deliveries,
    legacy_events,
)
from prometheus_client import CollectorRegistry  # noqa: E402

from sandbox import Exchange, SandboxConfig, start_server  # noqa: E402
from tests.private_redis import PrivateRedis, free_port  # noqa: E402
from worker.bootstrap import build_app  # noqa: E402
from worker.exchange.models import AccountType, Direction  # noqa: E402
from worker.runtime.broker import QUEUES, build_runtime  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.verify import MAX_FUNDING_ATTEMPTS, Violation, check, read_events  # noqa: E402

WRITES = (
    "add_sub_account",
    "add_sub_account_api",
    "modify_sub_account_api",
    "delete_sub_account_api",
    "transfer",
    "submit_kyc",
)
"""The exchange's write endpoints: none may be called while the workers are halted."""
HALTED_LINE = "no worker starts until an operator"
"""What ``provisioner worker`` prints while it waits in its halted mode."""
LOST_LINE = "state lost: halting every worker"
"""The CRITICAL log line of a worker that found the state lost."""
LOST_GAUGE = re.compile(r'^provisioner_state_lost\{kind="([a-z_]+)"\} 1\.0$', re.MULTILINE)


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
        self.held = False
        """Not to be restarted by the supervisor (the run is restarting it itself)."""

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

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")


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
@click.option(
    "--worker-client-oid",
    type=click.Choice(["dedupe", "reject", "accept", "unknown"]),
    default=None,
    help="What the worker is told of it (PROVISIONER_CLIENT_OID_BEHAVIOUR) [default: the simulator's for "
    "dedupe/reject, unknown for accept].",
)
@click.option(
    "--ledger-context",
    type=click.Choice(["order_id", "client_oid", "none"]),
    default="order_id",
    show_default=True,
    help="What the Special Account's ledger names of a transfer.",
)
@click.option("--ledger-lag-ms", default=300, show_default=True, help="Ledger listing lag of the simulator.")
@click.option("--listing-lag-ms", default=300, show_default=True, help="Sub-account and key listing lag.")
@click.option(
    "--activity-rate", default=0.1, show_default=True, help="Customer events per second per live sub-account."
)
@click.option("--deposit-share", default=0.3, show_default=True, help="Share of customer events that are deposits.")
@click.option("--topup-share", default=0.3, show_default=True, help="Share of customers with top-ups.")
@click.option("--transfer-failure-share", default=0.02, show_default=True, help="Accepted transfers that fail.")
@click.option("--transfer-processing-ms", default=200, show_default=True)
@click.option(
    "--transfer-credit",
    type=click.Choice(["at_once", "on_completion"]),
    default="at_once",
    show_default=True,
    help="When a transfer's money reaches the sub-account: accepted, or when it leaves PROCESSING.",
)
@click.option(
    "--state-loss",
    type=click.Choice(["restart", "flush", "none"]),
    default="restart",
    show_default=True,
    help="Lose Redis' state mid-stream: restart it without persistence, or flush the run's keys.",
)
@click.option(
    "--adopt", default=-1, help="Older system's sub-accounts adopted at the recovery [default: 1 %, at least 2]."
)
@click.option(
    "--management-quota",
    default=40_000,
    show_default=True,
    help="The Management pool's quota per 30 s (KuCoin: 2000): the Special Account's ledger and transfer lookups a "
    "recovery makes for every line.",
)
@click.option("--seed", default=1, show_default=True)
@click.option(
    "--publish-rate",
    default=0.0,
    show_default=True,
    help="Deliveries per second (default: spread over the chaos actions, so they happen mid-stream).",
)
@click.option("--timeout", default=1800, show_default=True, help="Seconds to wait for convergence.")
@click.option(
    "--patience",
    default=180,
    show_default=True,
    help="Give up once the same violations stood this long with nothing in flight.",
)
@click.option("--quick", is_flag=True, help="Shorter waits between chaos actions (the CI size).")
@click.option("--out", default="bench/results/chaos.json", show_default=True)
def main(
    customers: int,
    worker_count: int,
    threads: int,
    fault_rate: float,
    kills: int,
    client_oid: str,
    worker_client_oid: str | None,
    ledger_context: str,
    ledger_lag_ms: int,
    listing_lag_ms: int,
    activity_rate: float,
    deposit_share: float,
    topup_share: float,
    transfer_failure_share: float,
    transfer_processing_ms: int,
    transfer_credit: str,
    state_loss: str,
    adopt: int,
    management_quota: int,
    seed: int,
    publish_rate: float,
    timeout: int,
    patience: int,
    quick: bool,
    out: str,
) -> None:
    """Run the chaos scenario and check the invariants."""
    rng = random.Random(seed)
    run = f"chaos{uuid.uuid4().hex[:6]}"
    logdir = Path(tempfile.mkdtemp(prefix="chaos-logs-"))
    worker_client_oid = worker_client_oid or (client_oid if client_oid != "accept" else "unknown")
    if adopt < 0:
        adopt = max(2, customers // 100) if state_loss != "none" else 0
    rate = fault_rate / 4
    faults = {
        "latency_ms": 10,
        "latency_jitter_ms": 20,
        "rate_5xx": rate,
        "rate_drop": rate,
        "rate_429": rate,
        "rate_slow": rate,
        "slow_ms": 3000,
        "burst_429_ms": 300,
    }
    config = SandboxConfig.from_dict(
        {
            "seed": seed,
            "broker_quota": 40_000,
            "management_quota": management_quota,
            "duplicate_client_oid": client_oid,
            "ledger_context": ledger_context,
            "ledger_lag_ms": ledger_lag_ms,
            "listing_lag_ms": listing_lag_ms,
            "transfer_failure_share": transfer_failure_share,
            "transfer_processing_ms": transfer_processing_ms,
            "transfer_credit": transfer_credit,
            "activity": {"rate_per_s": activity_rate, "deposit_share": deposit_share},
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
        "worker_client_oid": worker_client_oid,
        "ledger_context": ledger_context,
        "ledger_lag_ms": ledger_lag_ms,
        "listing_lag_ms": listing_lag_ms,
        "activity_rate": activity_rate,
        "transfer_failure_share": transfer_failure_share,
        "transfer_credit": transfer_credit,
        "state_loss_mode": state_loss,
        "management_quota": management_quota,
        "seed": seed,
        "run": run,
        "logs": str(logdir),
    }
    workers: list[Worker] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    store.start()
    upstream: Upstream | None = None
    reader: OutboundReader | None = None
    try:
        with start_server(exchange) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("KUCOIN_", "PROVISIONER_", "PROMETHEUS"))}
            env.update(
                {
                    "REDIS_URL": store.url,
                    "PROVISIONER_REDIS_PREFIX": run,
                    "PROVISIONER_STATE_DIR": str(logdir / "state"),
                    "KUCOIN_BROKER_BASE_URL": server.url,
                    "KUCOIN_SPOT_BASE_URL": server.url,
                    "KUCOIN_HTTP_CONNECT_TIMEOUT": "1",
                    "KUCOIN_HTTP_READ_TIMEOUT": "2",
                    "KUCOIN_HTTP_WRITE_TIMEOUT": "1",
                    "KUCOIN_HTTP_POOL_TIMEOUT": "1",
                    "PROVISIONER_UNKNOWN_OUTCOME_SETTLE_MS": "2000",
                    "PROVISIONER_CLIENT_OID_BEHAVIOUR": worker_client_oid,
                    "PROVISIONER_LEDGER_LAG_MS": str(ledger_lag_ms + 1000),
                    "PROVISIONER_RECOVERY_SECONDS": "10",
                    "PROVISIONER_LOCK_TTL_MS": "10000",
                    "PROVISIONER_ROTATION_GRACE_SECONDS": "2",
                    "PROVISIONER_BROKER_QUOTA": "40000",
                    "PROVISIONER_MANAGEMENT_QUOTA": str(management_quota),
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
            legacy_uids = _older_system(settings, adopt, run)
            exchange.update_config({"faults": faults})
            runtime = build_runtime(settings, registry=CollectorRegistry())
            app = runtime.app
            publisher = runtime.publisher()
            plan = campaign(customers, run, rng, topup_share=topup_share, legacy=adopt)
            plan_deliveries = deliveries(plan.events, rng)
            figures |= {
                "events": len(plan.events),
                "deliveries": len(plan_deliveries),
                "topup_events": sum(e["type"] == "customer.funding_requested" for e in plan.events),
                "late_topups": len(plan.late),
                "cap_topup_lines": plan.cap_lines,
                "adopted": adopt,
            }
            log(
                f"{customers} customers, {len(plan.events)} events, {len(plan_deliveries)} deliveries; logs in {logdir}"
            )

            def stored(customer: str, event_id: str) -> bool:
                ref = app.policy.naming.customer_ref(customer)
                return bool(app.redis.hexists(app.keys.events(ref), event_id) or app.redis.exists(app.keys.closed(ref)))

            pause = (3, 8) if quick else (8, 20)
            if publish_rate <= 0:
                publish_rate = len(plan_deliveries) / ((kills + 3) * sum(pause) / 2 * 0.9)
            log(f"publishing at {publish_rate:.0f} deliveries/s")
            upstream = Upstream(publisher.publish, stored, plan.late, rate=publish_rate)
            reader = OutboundReader(store.url, app.keys.outbound)
            offboarded = plan.offboarded | set(plan.legacy[::2])
            oncall = OnCall(
                settings,
                lambda: list(exchange.state_snapshot()["transfers"]),
                lambda customer: customer in offboarded,
                log,
            )
            workers.extend(Worker(i, env, logdir, threads) for i in range(worker_count))
            for w in workers:
                w.start()
            chaos: Counter[str] = Counter()
            started = time.monotonic()

            def supervise() -> None:
                """A process manager: restarts a worker whose master exited (dramatiq stops when a process dies)."""
                while not stop.is_set():
                    for w in workers:
                        if not w.alive() and not w.held:
                            w.wait(1)
                            w.start()
                            chaos["restarts"] += 1
                    stop.wait(0.5)

            planned_loss = threading.Event()
            unexpected: list[dict[str, Any]] = []

            def on_call() -> None:
                while not stop.wait(5):
                    oncall.round()
                    reason = None if planned_loss.is_set() else oncall.halted()
                    if reason and not planned_loss.is_set():
                        # paged (StateLost) with no loss caused: a false alarm, but the workers wait for recover
                        log(f"on-call: the workers halted with no state loss: {reason}; running provisioner recover")
                        answer = recover(env, None, log, heard=write_heard(reader.events, logdir))
                        unexpected.append({"reason": reason, "recover": answer})

            reader.start()
            upstream.start(plan_deliveries)
            for target in (supervise, on_call):
                threading.Thread(target=target, daemon=True).start()
            total = len(plan_deliveries)
            done_term = done_redis = False
            done_loss = state_loss == "none"
            while chaos["kills"] < kills or not done_term or not done_redis or not done_loss:
                time.sleep(rng.uniform(*pause))
                share = upstream.published / total
                if not done_term and share >= 0.3:
                    log("SIGTERM to every worker")
                    for w in workers:
                        w.held = True
                        w.terminate()
                    for w in workers:
                        w.wait()
                        w.start()
                        w.held = False
                    chaos["sigterms"] += 1
                    done_term = True
                elif not done_redis and share >= 0.45:
                    log("kill -9 Redis, restart it from its AOF")
                    store.kill()
                    time.sleep(2)
                    store.start()
                    chaos["redis_restarts"] += 1
                    done_redis = True
                elif (
                    not done_loss and done_redis and share >= 0.6 and _created(exchange, legacy_uids) >= customers // 2
                ):
                    # lose the state once much of it exists: half the customers have their sub-account
                    planned_loss.set()
                    figures["state_loss"] = lose_state(
                        state_loss, store, workers, exchange, env, upstream, plan, legacy_uids, rng, logdir, reader
                    )
                    planned_loss.clear()
                    done_loss = True
                elif chaos["kills"] < kills:
                    victim = rng.choice(workers)
                    pids = victim.children()
                    if pids:
                        os.kill(rng.choice(pids), signal.SIGKILL)
                        chaos["kills"] += 1
                        log(f"kill -9 worker {victim.index} ({chaos['kills']}/{kills}), {share:.0%} published")
            upstream.close()
            upstream.join()
            published_at = time.monotonic()
            log(
                f"all {upstream.published} deliveries published after {published_at - started:.0f}s "
                f"({upstream.republished} re-published); waiting for convergence"
            )
            published = list(upstream.sent.values())
            events_path = logdir / "events.jsonl"
            events_path.write_text("".join(json.dumps(e) + "\n" for e in published))
            violations, converged_at = converge(
                runtime, events_path, server.url, exchange, settings, reader, timeout, patience
            )
            stop.set()
            violations += late_topups_paid(exchange, app.policy.naming, plan.late, upstream.sent)
            violations += [Violation("-", "no halt without a state loss", str(u["reason"])[:300]) for u in unexpected]
            figures |= {
                "chaos": dict(chaos),
                "violations": [v.__dict__ for v in violations],
                "publish_s": round(published_at - started, 1),
                "converge_after_publish_s": round(converged_at - published_at, 1) if converged_at else None,
                "total_s": round((converged_at or time.monotonic()) - started, 1),
                "published": upstream.published,
                "republished": upstream.republished,
                "late_topups_held_back": upstream.held_back,
                "late_topups_never_sent": upstream.unsent_late,
                "operator": {
                    "decisions": dict(oncall.decisions),
                    "retries": oncall.retries,
                    "escalated": sorted(oncall.given_up),
                    "refused_to_act": dict(oncall.refusals),
                    "decided": oncall.decided[:50],
                },
                "outbound": dict(Counter(e.get("type") for e in reader.events)),
                "funding_refused": _refusal_reasons(reader.events),
                "unexpected_halts": unexpected,
            }
            figures["journals"] = journals_of(app, violations)
            state = exchange.state_snapshot()
            figures["exchange_calls"] = sum(state["stats"]["requests"].values())
            figures["exchange_calls_by_endpoint"] = dict(
                sorted(state["stats"]["requests"].items(), key=lambda item: -int(item[1]))
            )
            figures["faults_injected"] = state["stats"]["faults"]
            figures["exchange_429s"] = state["stats"]["rateLimited"]
            figures["activity"] = state["stats"]["activity"]
            figures["transfers"] = dict(Counter(f"{t['direction']}:{t['status']}" for t in state["transfers"]))
            letters = [d.summary() for d in runtime.dead_letters().list()]
            figures["dead_letters"] = {
                "count": len(letters),
                "kinds": dict(Counter(str(d.get("kind")) for d in letters)),
                "first": letters[:20],
            }
            metrics_text = "\n".join(w.scrape() for w in workers)
            _stop_workers(workers)
            figures |= scan_logs(logdir, worker_count)
            figures["secret_hits"] = secret_hits(exchange, settings, store.url, logdir, metrics_text)
            runtime.close()
    finally:
        # whatever ended the run (an error, SIGTERM, a closed stdout), leave no worker or Redis running
        stop.set()
        if upstream is not None:
            upstream.stop()
        if reader is not None:
            reader.stop()
        for w in workers:
            w.kill()
        store.stop()
    report(figures, out)
    failed = figures["violations"] or figures["secret_hits"] or figures["converge_after_publish_s"] is None
    loss = figures.get("state_loss") or {}
    failed = failed or (state_loss != "none" and not loss.get("all_halted"))
    sys.exit(1 if failed else 0)


def _older_system(settings: Settings, count: int, run: str) -> list[str]:
    """Sub-accounts an older system created and funded (40 USDT under its own clientOid), to be adopted at the
    recovery. Made before the faults are switched on."""
    if not count:
        return []
    app = build_app(settings)
    uids = []
    try:
        for i in range(count):
            sub = app.exchange.sub_accounts.add(account_name=f"old{run[5:]}x{i:03d}")
            app.exchange.transfers.transfer(
                currency="USDT",
                amount=Decimal(40),
                direction=Direction.OUT,
                account_type=AccountType.MAIN,
                special_uid=sub.uid,
                special_account_type=AccountType.TRADE,
                client_oid=f"older-system-{run}-{i}",
            )
            uids.append(sub.uid)
    finally:
        app.close()
    return uids


def _declare_when_republished(upstream: Upstream, env: dict[str, str], log: Callable[[str], None]) -> None:
    """The upstream tells the on-call when its re-publication is sent; the on-call declares it (new top-ups are
    then sent without being looked for first)."""
    deadline = time.monotonic() + 600
    while upstream.republishing() and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(2)  # the last one being sent
    declare_republished(env, log)


def write_heard(events: list[dict[str, Any]], logdir: Path) -> Path:
    """What the upstream received (every outbound event its reader took), as a file for ``recover --heard``."""
    path = logdir / "heard.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in list(events)), encoding="utf-8")
    return path


def lose_state(
    mode: str,
    store: PrivateRedis,
    workers: list[Worker],
    exchange: Exchange,
    env: dict[str, str],
    upstream: Upstream,
    plan: Any,
    legacy_uids: list[str],
    rng: random.Random,
    logdir: Path,
    reader: OutboundReader,
) -> dict[str, Any]:
    """Lose Redis' state under the running workers; check that every one halts and nothing is sent while they
    are halted; recover as the on-call would (adopting the older system's sub-accounts); re-publish everything."""
    # the loss is meant to find the workers running (a kill -9 just before may have them restarting, and a worker
    # that starts after the loss halts at its start-up check instead: right, but not the path this step exercises)
    ready_by = time.monotonic() + 120
    while not all(w.alive() and w.children() for w in workers) and time.monotonic() < ready_by:
        time.sleep(0.5)
    time.sleep(3)  # their consumers and due schedulers running, past the start-up check
    offsets = {w.index: w.log_size() for w in workers}
    writes_before = _write_calls(exchange)
    lost_at = time.monotonic()
    if mode == "restart":
        log("state loss: kill -9 Redis, restart it WITHOUT persistence (empty)")
        store.kill()
        store.durable = False
        store.start()
    else:
        log("state loss: FLUSHDB under the running workers")
        client = redis.Redis.from_url(store.url)
        client.flushdb()
        client.close()
    halted: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + 180
    while len(halted) < len(workers) and time.monotonic() < deadline:
        for w in workers:
            if w.index in halted:
                continue
            gauge = LOST_GAUGE.findall(w.scrape())
            text = w.log_since(offsets[w.index])
            if gauge and HALTED_LINE in text:
                halted[w.index] = {
                    "after_s": round(time.monotonic() - lost_at, 1),
                    "gauge_kinds": sorted(set(gauge)),
                    "found_it_running": LOST_LINE in text,
                }
        time.sleep(1)
    all_halted = len(halted) == len(workers)
    log(f"state loss: {len(halted)}/{len(workers)} workers halted: {halted}")
    writes_at_halt = _write_calls(exchange)
    time.sleep(5)
    writes_after = _write_calls(exchange)
    client = redis.Redis.from_url(store.url, decode_responses=True)
    halt_reason = client.hget(f"{env['PROVISIONER_REDIS_PREFIX']}:state", "halted")
    client.close()
    adopt_file = None
    if legacy_uids:
        adopt_file = logdir / "adopt.csv"
        adopt_file.write_text(
            "customer_id,uid\n" + "".join(f"{c},{u}\n" for c, u in zip(plan.legacy, legacy_uids, strict=True))
        )
    answer = recover(env, adopt_file, log, heard=write_heard(reader.events, logdir))
    log(f"provisioner recover: {answer}")
    adopted_at = datetime.now(UTC)
    legacy = [e for i, c in enumerate(plan.legacy) for e in legacy_events(c, rng, adopted_at, offboard=i % 2 == 0)]
    again = deliveries([*plan.events, *legacy], rng)
    upstream.republish(list({id(e): e for e in again}.values()))
    log(f"re-publishing {upstream.republished} events ({len(legacy)} of the older system's customers)")
    threading.Thread(target=_declare_when_republished, args=(upstream, env, log), daemon=True).start()
    return {
        "mode": mode,
        "all_halted": all_halted,
        "halted": halted,
        "halt_reason": halt_reason,
        "exchange_writes_from_loss_to_halt": _diff(writes_at_halt, writes_before),
        "exchange_writes_while_halted": _diff(writes_after, writes_at_halt),
        "recover": answer,
        "halted_to_recovered_s": round(time.monotonic() - lost_at, 1),
    }


def _created(exchange: Exchange, legacy: list[str]) -> int:
    """Sub-accounts the workers created so far."""
    with exchange.lock:
        return len(exchange.state.subaccounts) - len(legacy)


def _write_calls(exchange: Exchange) -> dict[str, int]:
    requests = exchange.state_snapshot()["stats"]["requests"]
    return {name: int(requests.get(name, 0)) for name in WRITES}


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def _refusal_reasons(events: list[dict[str, Any]]) -> dict[str, int]:
    reasons: Counter[str] = Counter()
    for e in events:
        if e.get("type") == "funding.refused":
            reason = str(e.get("reason"))
            reasons[re.sub(r"[0-9.]+", "N", reason)[:70]] += 1
    return dict(reasons)


def late_topups_paid(
    exchange: Exchange, naming: Any, late: dict[str, str], sent: dict[str, dict[str, Any]]
) -> list[Violation]:
    """A top-up published once its customer's offboarding was stored must never be paid."""
    oids: dict[str, str] = {}
    for event_id in late:
        event = sent.get(event_id)
        if event is None:
            continue
        ref = naming.customer_ref(event["customer_id"])
        for attempt in range(MAX_FUNDING_ATTEMPTS):
            oids[naming.funding_client_oid(ref, f"{event_id}#0", attempt)] = event["customer_id"]
    return [
        Violation(oids[t["clientOid"]], "a top-up after the offboarding is never paid", f"order {t['orderId']}")
        for t in exchange.state_snapshot()["transfers"]
        if t["clientOid"] in oids and t["status"] != "FAILURE"
    ]


def journals_of(app: Any, violations: list[Violation], customers: int = 12) -> dict[str, list[str]]:
    """The journal of the first customers with a violation, one line per entry (for the report)."""
    out: dict[str, list[str]] = {}
    for customer in dict.fromkeys(v.customer for v in violations if v.customer != "-"):
        if len(out) >= customers:
            break
        ref = app.policy.naming.customer_ref(customer)
        lines = []
        for entry in app.store.journal(ref, count=10_000):
            detail = {k: v for k, v in entry.items() if k not in ("at_ms", "actor", "action") and v is not None}
            lines.append(f"{entry.get('at_ms')} {entry.get('actor')} {entry.get('action')} {json.dumps(detail)[:300]}")
        out[f"{customer} ({ref})"] = lines
    return out


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _stop_workers(workers: list[Worker]) -> None:
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait()


def converge(
    runtime: Any,
    events_path: Path,
    sandbox_url: str,
    exchange: Exchange,
    settings: Settings,
    reader: OutboundReader,
    timeout: float,
    patience: float,
) -> tuple[list[Violation], float | None]:
    """Wait until nothing is in flight, then check; keep checking until clean, out of time, or the same violations
    stood ``patience`` seconds (the on-call keeps deciding blocked transfers meanwhile)."""
    from cli.verify_cmd import key_probe

    app = runtime.app
    deadline = time.monotonic() + timeout
    violations: list[Violation] = []
    standing: tuple[set[Violation], float] = (set(), time.monotonic())
    said = time.monotonic()
    while time.monotonic() < deadline:
        try:
            parts = _in_flight(runtime)
        except redis.RedisError:
            time.sleep(1)
            continue
        busy = sum(parts.values())
        if busy and time.monotonic() - said > 30:
            log(f"still in flight: {json.dumps({k: v for k, v in parts.items() if v})}")
            said = time.monotonic()
        if busy:
            if any(parts[k] for k in ("queued", "pending_intents", "running", "inbox", "handoff")):
                standing = (standing[0], time.monotonic())  # work goes on: the violations may still change
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
        reader.read()
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
                daily_caps=settings.funding_cap_per_day,
                dead_letters=letters,
                outbound=reader.events,
            )
        if not violations:
            return [], time.monotonic()
        if set(violations) != standing[0]:
            standing = (set(violations), time.monotonic())
        elif time.monotonic() - standing[1] > patience:
            log(f"the same {len(violations)} violation(s) stood {patience:.0f}s with nothing in flight: giving up")
            return violations, None
        log(f"{len(violations)} violation(s) still; e.g. {violations[0]}")
        time.sleep(5)
    if not violations:  # never quiet long enough to check: that is the finding
        try:
            left = json.dumps({k: v for k, v in _in_flight(runtime).items() if v})
        except redis.RedisError:
            left = "unknown (Redis not answering)"
        violations = [Violation("-", "converges", f"still in flight after {timeout:.0f}s: {left}")]
    return violations, None


def _in_flight(runtime: Any) -> dict[str, int]:
    """What is still to do, by kind (all zero once the system is quiet)."""
    app = runtime.app
    r = app.redis
    ns = runtime.broker.namespace
    now = int(time.time() * 1000)
    return {
        "queued": sum(r.llen(f"{ns}:{q}") + r.llen(f"{ns}:{q}.DQ") for q in QUEUES),
        "pending_intents": r.zcard(app.keys.pending),
        "inbox": r.zcard(app.keys.inbox),
        "due_10s": r.zcount(app.keys.due, "-inf", now + 10_000),
        "running": r.zcard(f"{app.keys.due}:inflight"),
        "handoff": sum(r.zcard(app.keys.handoff(q)) for q in QUEUES),
    }


def scan_logs(logdir: Path, workers: int) -> dict[str, Any]:
    """Retries, tracebacks, criticals and state-loss lines from the workers' logs."""
    retries = failures = criticals = tracebacks = lines = lost = halted = 0
    for path in logdir.glob("worker-*.log"):
        for raw in path.read_text(errors="replace").splitlines():
            lines += 1
            halted += HALTED_LINE in raw
            try:
                entry = json.loads(raw)
            except ValueError:
                tracebacks += raw.startswith("Traceback")
                continue
            if not isinstance(entry, dict):
                continue
            if entry.get("event") == "message failed":
                failures += 1
                retries += bool(entry.get("will_retry"))
            criticals += entry.get("level") == "critical"
            lost += LOST_LINE in str(entry.get("event"))
    return {
        "log_lines": lines,
        "message_failures": failures,
        "retries": retries,
        "critical_logs": criticals,
        "state_lost_logs": lost,
        "halted_mode_lines": halted,
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
    loss = figures.get("state_loss") or {}
    operator = figures.get("operator") or {}
    rows = [
        ("customers / events / deliveries", f"{figures['customers']} / {figures['events']} / {figures['deliveries']}"),
        (
            "clientOid sim / worker, ledger",
            f"{figures['client_oid']} / {figures['worker_client_oid']}, "
            f"{figures['ledger_context']} (lag {figures['ledger_lag_ms']} ms)",
        ),
        ("workers x threads", f"{figures['workers']} x {figures['threads']}"),
        ("published (re-published)", f"{figures.get('published')} ({figures.get('republished')})"),
        ("exchange calls", figures.get("exchange_calls")),
        ("faults injected", json.dumps(figures.get("faults_injected"), sort_keys=True)),
        ("exchange 429s", figures.get("exchange_429s")),
        ("customer activity", json.dumps(figures.get("activity"), sort_keys=True)),
        ("transfers", json.dumps(figures.get("transfers"), sort_keys=True)),
        ("chaos", json.dumps(figures.get("chaos"), sort_keys=True)),
        (
            "state loss",
            f"{loss.get('mode', 'none')}: {len(loss.get('halted') or {})}/{figures['workers']} halted, "
            f"writes while halted {loss.get('exchange_writes_while_halted')}",
        ),
        ("halts with no state loss", len(figures.get("unexpected_halts") or [])),
        (
            "operator decisions / retries / escalated",
            f"{json.dumps(operator.get('decisions'))} / {operator.get('retries')} / "
            f"{len(operator.get('escalated') or [])}",
        ),
        ("outbound", json.dumps(figures.get("outbound"), sort_keys=True)),
        ("message failures / retries", f"{figures.get('message_failures')} / {figures.get('retries')}"),
        ("dead letters", (figures.get("dead_letters") or {}).get("count")),
        ("publish time", f"{figures.get('publish_s')} s"),
        ("converged after last publish", f"{figures.get('converge_after_publish_s')} s"),
        ("secret hits", len(figures.get("secret_hits") or [])),
        ("violations", len(figures.get("violations") or [])),
    ]
    click.echo("")
    for name, value in rows:
        click.echo(f"{name:>32}  {value}")
    for v in (figures.get("violations") or [])[:20]:
        click.echo(f"  VIOLATION {v['customer']}: {v['invariant']}: {v['detail']}")
    for hit in (figures.get("secret_hits") or [])[:20]:
        click.echo(f"  SECRET FOUND {hit}")
    click.echo(f"\nwrote {out}")


if __name__ == "__main__":
    main()
