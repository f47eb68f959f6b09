"""What one KYC approval costs in Redis — a measurement, not a test: it prints a table.

On a redis-server of its own (no persistence), for each photo size: one ``customer.kyc_approved`` with three
photos of that many decoded bytes (random, so incompressible, as JPEG is) is published through the ``Publisher``
behind ``provisioner publish``, then stored by intake as the worker would (the message still queued). Figures are
growth of the keys (``MEMORY USAGE`` summed over the deployment's keys) and of Redis' ``used_memory`` (which
also counts what is transient: the client's query buffer that held the large command, the script engine's
memory), each *queued* (after publishing) and *stored* (after intake). Sizes above
``PROVISIONER_MAX_KYC_PHOTO_BYTES`` (2 MiB by default) show the refusal.

Usage: ``.venv/bin/python bench/kyc_redis_cost.py [DECODED_PHOTO_BYTES ...]`` (default 100000 500000 2097152
2097153; a few seconds).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.core.harness import Rig, events_for, kyc_documents  # noqa: E402
from tests.private_redis import PrivateRedis  # noqa: E402
from worker.intake import Refused  # noqa: E402
from worker.runtime.broker import build_runtime  # noqa: E402


def measure(url: str, photo_bytes: int) -> tuple[int, str, tuple[int, int], tuple[int, int]]:
    """(event bytes, outcome, (keys, used_memory) growth while queued, the same once stored), on a key prefix of
    its own."""
    rig = Rig(url, f"kyc{photo_bytes}", PROVISIONER_PROXY_KYC="true")
    runtime = build_runtime(rig.settings, transport=rig.transport, registry=CollectorRegistry(), clock=rig.clock)
    try:
        r = rig.app.redis

        def used() -> tuple[int, int]:
            keys = sum(r.memory_usage(k, samples=0) or 0 for k in r.scan_iter(count=1000))
            return keys, int(r.info("memory")["used_memory"])

        ev = events_for(f"size-{photo_bytes}")
        approval = copy.deepcopy(ev["kyc"])
        photo = "data:image/jpeg;base64," + base64.b64encode(os.urandom(photo_bytes)).decode()
        approval["data"]["kyc"] = {**kyc_documents("Ada"), "front_photo": photo, "backend_photo": photo}
        approval["data"]["kyc"]["face_photo"] = photo
        text = json.dumps(approval)
        publisher = runtime.publisher()
        publisher.publish(json.dumps(ev["created"]))
        before = used()
        outcome = publisher.publish(text)
        queued = tuple(a - b for a, b in zip(used(), before, strict=True))
        if isinstance(outcome, Refused):
            return len(text), f"refused: {outcome.field}", (queued[0], queued[1]), (queued[0], queued[1])
        rig.app.intake.accept(text)
        stored = tuple(a - b for a, b in zip(used(), before, strict=True))
        return len(text), "published", (queued[0], queued[1]), (stored[0], stored[1])
    finally:
        runtime.close()
        rig.close()


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 500_000, 2_097_152, 2_097_153]
    server = PrivateRedis(durable=False)
    server.start()
    try:
        print("MB: keys / used_memory")
        print(f"{'photo bytes':>12} {'event bytes':>12} {'queued MB':>12} {'stored MB':>12}  outcome")
        for size in sizes:
            event_bytes, outcome, queued, stored = measure(server.url, size)
            q, st = f"{queued[0] / 1e6:.1f} / {queued[1] / 1e6:.1f}", f"{stored[0] / 1e6:.1f} / {stored[1] / 1e6:.1f}"
            print(f"{size:>12} {event_bytes:>12} {q:>12} {st:>12}  {outcome}")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
