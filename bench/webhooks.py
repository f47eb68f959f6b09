"""Webhook delivery throughput: N outbound events of M customers, delivered by one dispatcher (C connections) to
a loopback receiver that answers 204 — the Node example (verifies every signature, as an upstream would) when
``node`` is on PATH and ``--receiver node``, else a minimal Python one. Prints deliveries/s and the dispatcher
process's CPU per delivery. Uses its own key prefix on REDIS_URL (default the tests' database 11) and removes it.

    .venv/bin/python bench/webhooks.py --events 5000 --customers 500 --concurrency 16 --receiver node
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).parents[1]))

from worker.settings import Settings
from worker.store.keys import Keys
from worker.store.outbound import OutboundEvent, OutboundLog, rfc3339
from worker.webhooks.runtime import build_dispatcher
from worker.webhooks.store import DeliveryStore

SECRET = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtb2YtMzItYnl0ZXMhIQ=="


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def python_receiver() -> tuple[str, Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server.shutdown


def node_receiver() -> tuple[str, Any]:
    from joserfc.jwk import ECKey

    example = Path(__file__).parents[1] / "examples" / "node"
    if not (example / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=example, check=True, capture_output=True)
    env = {**os.environ, "WEBHOOK_SECRET": SECRET, "PORT": "0"}
    env["DELIVERY_PRIVATE_JWK"] = json.dumps(ECKey.generate_key("P-256").as_dict(private=True))
    proc = subprocess.Popen(["node", "receiver.mjs"], cwd=example, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = json.loads(proc.stdout.readline())["listening"]
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    return f"http://127.0.0.1:{port}/", proc.terminate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--receiver", choices=["python", "node"], default="python")
    args = parser.parse_args()

    url, stop_receiver = node_receiver() if args.receiver == "node" else python_receiver()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    settings, _ = Settings.from_env(
        {
            "REDIS_URL": redis_url,
            "PROVISIONER_REDIS_PREFIX": prefix,
            "PROVISIONER_WEBHOOK_URL": url,
            "PROVISIONER_WEBHOOK_SECRET": SECRET,
            "PROVISIONER_WEBHOOK_CONCURRENCY": str(args.concurrency),
        }
    )
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(prefix)
    log = OutboundLog(client, keys)
    try:
        for n in range(args.customers):
            client.hset(keys.events(f"c{n:05d}"), "held", "{}")
        now = rfc3339(int(time.time() * 1000))
        for i in range(args.events):
            ref = f"c{i % args.customers:05d}"
            log.append(
                OutboundEvent(f"kyc.passed:{ref}:{i}", "kyc.passed", {"customer_ref": ref, "occurred_at": now}), ref=ref
            )
        dispatcher = build_dispatcher(settings, client, poll_s=0.01)
        assert dispatcher is not None
        store = DeliveryStore(client, keys)
        cpu0, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        dispatcher.start()
        while True:
            status = store.status()
            if status.undelivered == 0 and status.oldest_ms is None:
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        dispatcher.stop()
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        print(
            json.dumps(
                {
                    "receiver": args.receiver,
                    "events": args.events,
                    "customers": args.customers,
                    "concurrency": args.concurrency,
                    "seconds": round(elapsed, 2),
                    "deliveries_per_s": round(args.events / elapsed, 1),
                    "dispatcher_cpu_ms_per_delivery": round(1000 * cpu / args.events, 3),
                }
            )
        )
    finally:
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
        stop_receiver()


if __name__ == "__main__":
    main()
