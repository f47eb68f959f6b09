"""Events accepted durably per second over HTTP — a benchmark, not a test: it prints a table and writes JSON.

``provisioner api`` runs as its own process (one uvicorn process, INFO logs to /dev/null as in production minus
the disk) on loopback against a redis-server of the benchmark's own with the README's persistence
(``appendonly yes``, ``appendfsync always``; ``--fsync everysec`` to compare). Nothing consumes the queues: this
measures the way in only. Every figure is for events that got a 2xx, i.e. are held by the hand-off.

Scenarios, each on fresh event ids (half ``customer.created``, half ``customer.kyc_approved`` with a funding line):
- ``single``: one event per request, ``--connections`` keep-alive connections each sending its next request as
  soon as the last is answered (closed loop): the most the API takes; latency per request.
- ``paced``: one event per request at a fixed offered rate (``--rate``, default 500/s) over as many connections
  as needed: latency at that load.
- ``batch``: ``--batch-size`` events per request (default 500) over ``--batch-connections`` connections.
- ``publisher``: the Python ``Publisher`` behind ``provisioner publish`` (validate, seal, hand-off), in this
  process, one event at a time, against the same Redis.

Requests are signed before the clock starts (Standard Webhooks headers valid for five minutes); the client is a
minimal asyncio HTTP/1.1 client, so that the load generator costs little of the two cores it shares with the
API and Redis. CPU seconds of the API process and of redis-server are read from ``/proc``.

Usage: ``.venv/bin/python bench/ingest.py`` (about a minute; ``--help``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api.live import SECRET, sign  # noqa: E402
from tests.private_redis import PrivateRedis, free_port  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def events(count: int, tag: str) -> list[dict[str, Any]]:
    moment = (datetime.now(UTC) - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = []
    for i in range(count):
        customer = f"{tag}-{i // 2}"
        if i % 2 == 0:
            out.append(
                {
                    "id": f"{customer}-c",
                    "type": "customer.created",
                    "customer_id": customer,
                    "occurred_at": moment,
                    "data": {},
                }
            )
        else:
            out.append(
                {
                    "id": f"{customer}-k",
                    "type": "customer.kyc_approved",
                    "customer_id": customer,
                    "occurred_at": moment,
                    "data": {
                        "permissions": ["general", "spot"],
                        "ip_whitelist": ["203.0.114.10"],
                        "funding": [{"currency": "USDT", "amount": "250"}],
                    },
                }
            )
    return out


def request_bytes(port: int, document: Any) -> bytes:
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = {**sign(body, secret=SECRET), "content-type": "application/json", "content-length": str(len(body))}
    head = f"POST /v1/events HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return head.encode() + b"\r\n" + body


class Connection:
    """One keep-alive HTTP/1.1 connection: send a prepared request, read the status and the body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summary(
    name: str, latencies: list[float], elapsed: float, events_done: int, cpu: dict[str, float]
) -> dict[str, Any]:
    return {
        "scenario": name,
        "requests": len(latencies),
        "events": events_done,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "events_per_s": round(events_done / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
    }


async def closed_loop(
    port: int, requests: list[bytes], connections: int, per_request: int
) -> tuple[list[float], float]:
    queue = iter(requests)
    latencies: list[float] = []

    async def run() -> None:
        conn = await Connection.open(port)
        for request in queue:
            started = time.perf_counter()
            status, body = await conn.exchange(request)
            latencies.append(time.perf_counter() - started)
            if status not in (200, 202):
                raise RuntimeError(f"status {status}: {body[:300]!r}")
            if per_request > 1 and body.count(b'"accepted"') != per_request:
                raise RuntimeError(f"not every event accepted: {body[:300]!r}")
        conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(run() for _ in range(connections)))
    return latencies, time.perf_counter() - started


async def paced(port: int, requests: list[bytes], rate: float, connections: int) -> tuple[list[float], float]:
    """Send request i at start + i / rate (open loop) on the first idle connection; latency counts from the
    scheduled send time, so queueing behind a slow answer is counted."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    start = time.perf_counter() + 0.05

    async def one(i: int, request: bytes) -> None:
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        conn = await idle.get()
        status, body = await conn.exchange(request)
        latencies.append(time.perf_counter() - scheduled)
        idle.put_nowait(conn)
        if status not in (200, 202):
            raise RuntimeError(f"status {status}: {body[:300]!r}")

    await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
    elapsed = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().close()
    return latencies, elapsed


def run_publisher(redis_url: str, count: int) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from worker.runtime.broker import build_runtime
    from worker.settings import Settings

    settings, _ = Settings.from_env({"REDIS_URL": redis_url, "PROVISIONER_REDIS_PREFIX": "benchpub"})
    runtime = build_runtime(settings, registry=CollectorRegistry())
    publisher = runtime.publisher()
    documents = [json.dumps(e) for e in events(count, f"pub{uuid.uuid4().hex[:6]}")]
    latencies = []
    cpu0 = time.process_time()
    started = time.perf_counter()
    for document in documents:
        t = time.perf_counter()
        publisher.publish(document)
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    runtime.close()
    return summary(
        "publisher (Python, in-process)", latencies, elapsed, count, {"publisher": time.process_time() - cpu0}
    )


@click.command()
@click.option("--single", "single_count", default=6000, show_default=True, help="Requests of the single scenario.")
@click.option("--connections", default=16, show_default=True)
@click.option("--rate", default=500.0, show_default=True, help="Offered requests/s of the paced scenario.")
@click.option("--paced", "paced_count", default=5000, show_default=True)
@click.option("--batch-size", default=500, show_default=True)
@click.option("--batches", default=120, show_default=True)
@click.option("--batch-connections", default=2, show_default=True)
@click.option("--publisher", "publisher_count", default=4000, show_default=True)
@click.option("--fsync", type=click.Choice(["always", "everysec"]), default="always", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "bench/results/ingest.json", show_default=True)
def main(
    single_count: int,
    connections: int,
    rate: float,
    paced_count: int,
    batch_size: int,
    batches: int,
    batch_connections: int,
    publisher_count: int,
    fsync: str,
    out: Path,
) -> None:
    """Run the ingest benchmark and print its table."""
    store = PrivateRedis(durable=True, fsync=fsync)
    store.start()
    port, metrics_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KUCOIN_", "PROVISIONER_", "REDIS_"))},
        "REDIS_URL": store.url,
        "PROVISIONER_REDIS_PREFIX": "bench",
        "PROVISIONER_API_METRICS_PORT": str(metrics_port),
        "PROVISIONER_LOG_FORMAT": "json",
    }
    api = subprocess.Popen(
        [str(Path(sys.executable).with_name("provisioner")), "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.1)
        redis_pid = store.proc.pid if store.proc else 0

        def measure(name: str, coro: Any, count_events: int) -> None:
            before = {"api": cpu_seconds(api.pid), "redis": cpu_seconds(redis_pid)}
            latencies, elapsed = asyncio.run(coro)
            cpu = {k: cpu_seconds(p) - before[k] for k, p in (("api", api.pid), ("redis", redis_pid))}
            results.append(summary(name, latencies, elapsed, count_events, cpu))
            click.echo(json.dumps(results[-1]), err=True)

        warm = [request_bytes(port, e) for e in events(500, "warm")]
        asyncio.run(closed_loop(port, warm, 4, 1))
        single = [request_bytes(port, e) for e in events(single_count, f"s{uuid.uuid4().hex[:6]}")]
        measure(f"single, {connections} connections", closed_loop(port, single, connections, 1), single_count)
        pace = [request_bytes(port, e) for e in events(paced_count, f"p{uuid.uuid4().hex[:6]}")]
        measure(f"single, paced at {rate:g}/s", paced(port, pace, rate, 64), paced_count)
        all_batched = events(batch_size * batches, f"b{uuid.uuid4().hex[:6]}")
        batched = [
            request_bytes(port, {"events": all_batched[i : i + batch_size]})
            for i in range(0, len(all_batched), batch_size)
        ]
        measure(
            f"batch of {batch_size}, {batch_connections} connections",
            closed_loop(port, batched, batch_connections, batch_size),
            len(all_batched),
        )
        before = cpu_seconds(redis_pid)
        results.append(run_publisher(store.url, publisher_count))
        results[-1]["cpu_s"]["redis"] = round(cpu_seconds(redis_pid) - before, 2)
        client = redis.Redis.from_url(store.url)
        held = sum(int(client.zcard(f"bench:handoff:{q}")) for q in ("events", "urgent"))
        client.close()
        expected = single_count + paced_count + batch_size * batches + 500
        if held != expected:
            raise RuntimeError(f"the hand-off holds {held} events, {expected} were accepted")
    finally:
        api.terminate()
        api.wait(10)
        store.stop()
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "redis_fsync": fsync,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    click.echo(f"\n{'scenario':42} {'events/s':>10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  cpu s (api / redis)")
    for r in results:
        cpu = r["cpu_s"]
        click.echo(
            f"{r['scenario']:42} {r['events_per_s']:>10} {r['requests_per_s']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8}"
            f"  {cpu.get('api', cpu.get('publisher', 0))} / {cpu.get('redis', 0)}"
        )


if __name__ == "__main__":
    main()
