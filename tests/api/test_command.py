"""``provisioner api`` as a process: in production it starts with Redis and its own three settings only, serves
signed requests, answers health and readiness, exposes its metrics, and logs one JSON line per request."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.api.live import PRODUCTION_SECRET, PROVISIONER, ROOT, START_TIMEOUT_S, Upstream, event, production_env
from tests.private_redis import free_port
from worker.settings import DEV_DEFAULT_SECRETS

pytestmark = pytest.mark.redis


def test_provisioner_api_needs_no_exchange_credential_and_no_opening_key(redis_url: str, key_prefix: str) -> None:
    port, metrics_port = free_port(), free_port()
    env = production_env(redis_url, key_prefix, PROVISIONER_API_METRICS_PORT=str(metrics_port))
    shared = ("PROVISIONER_NAME_SECRET", "PROVISIONER_EVENT_SIGNING_KEYS")  # the API holds these as the workers do
    assert not any(name in env for name in DEV_DEFAULT_SECRETS if name not in shared)
    process = subprocess.Popen(
        [PROVISIONER, "api", "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        assert httpx.get(f"{url}/readyz").status_code == 200
        upstream = Upstream(url, secret=PRODUCTION_SECRET)
        assert upstream.post(event("customer.created", "cmd-1")).status_code == 202
        assert upstream.client.post("/v1/events", content=b"{}").status_code == 401
        upstream.close()
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'provisioner_api_requests_total{method="POST",route="/v1/events",status="202"} 1.0' in scraped
        assert 'provisioner_api_ingest_seconds_count{kind="single"} 1.0' in scraped
        assert 'provisioner_api_events_total{status="accepted"} 1.0' in scraped
    finally:
        process.terminate()
        out, err = process.communicate(timeout=15)
    lines = [json.loads(line) for line in (out + err).decode().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert [r["status"] for r in requests if r["route"] == "/v1/events"] == [202, 401]
    assert all(r["level"] == "info" and "duration_ms" in r for r in requests)


def test_provisioner_api_in_production_refuses_to_start_without_its_secrets(redis_url: str, key_prefix: str) -> None:
    env = production_env(redis_url, key_prefix)
    del env["PROVISIONER_API_SECRETS"]
    done = subprocess.run([PROVISIONER, "api"], env=env, cwd=ROOT, capture_output=True, timeout=30, check=False)
    assert done.returncode != 0
    assert "PROVISIONER_API_SECRETS" in done.stderr.decode()
    assert "KUCOIN" not in done.stderr.decode(), "it asks for nothing it does not need"
