"""The API served for real on a loopback port (uvicorn in a thread), and a client that signs like an upstream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from prometheus_client import CollectorRegistry
from standardwebhooks.webhooks import Webhook

from api.app import ApiServices, create_app
from api.bootstrap import build_services
from tests.private_redis import free_port
from worker.sealing import generate_key_pair
from worker.settings import DEV_DEFAULT_API_SETTINGS, Profile, Settings

SECRET = DEV_DEFAULT_API_SETTINGS["PROVISIONER_API_SECRETS"]
PRODUCTION_SECRET = "whsec_3q2+7wCm9Lx0aZ4kQ1vT8nB5yR6uE2sHdGfJcP7oWiM="
PRODUCTION_SIGNING_KEYS = "p1=9mVq3xR0cT7bL2nW8yK5hD1sF4gJ6aZ0pE3uI7oQ2vM="
"""The event-signing keys of the production API in these tests (a worker taking its messages needs the same)."""
"""Production refuses the development request-signing secret: this one stands for a real one."""
PROVISIONER = str(Path(sys.executable).with_name("provisioner"))
ROOT = Path(__file__).parents[2]
START_TIMEOUT_S = 60
"""How long ``provisioner api`` may take to answer ``/healthz``: its imports alone take 2 s of CPU, and the test
machine's two cores are shared (15 s was exceeded at a load average of 10)."""
OTHER_SECRET = "whsec_" + "b3RoZXItc2VjcmV0LXRoYXQtc2lnbnMtbm90aGluZw=="


def api_settings(redis_url: str, key_prefix: str, **extra: str) -> Settings:
    """The API profile's settings on the test Redis and key prefix (development defaults for its secrets)."""
    env = {"REDIS_URL": redis_url, "PROVISIONER_REDIS_PREFIX": key_prefix, **extra}
    settings, _ = Settings.from_env(env, profile=Profile.API)
    return settings


class LiveApi:
    """``create_app(services)`` served by uvicorn on 127.0.0.1:<free port> until ``stop``."""

    def __init__(self, services: ApiServices) -> None:
        self.services = services
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(services), host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveApi:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def production_env(redis_url: str, key_prefix: str, **extra: str) -> dict[str, str]:
    """The environment of ``provisioner api`` in production on the test Redis: its own settings only (no
    ``KUCOIN_*``, ``PROVISIONER_*`` or ``REDIS_*`` inherited), secrets production accepts, the plaintext-Redis
    opt-out (the test Redis is on loopback), JSON logs, requests signed with ``PRODUCTION_SECRET``."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("KUCOIN_", "PROVISIONER_", "REDIS_"))}
    return {
        **keep,
        "PROVISIONER_ENV": "production",
        "REDIS_URL": redis_url,
        "PROVISIONER_REDIS_PREFIX": key_prefix,
        "PROVISIONER_ALLOW_PLAINTEXT_REDIS": "true",
        "PROVISIONER_NAME_SECRET": "q7Vd2LmX9pRf4TzK8wBn3HsJ6yCg1NaE",
        "PROVISIONER_API_SECRETS": PRODUCTION_SECRET,
        "PROVISIONER_INTAKE_PUBLIC_KEY": generate_key_pair("k1")[1],
        "PROVISIONER_EVENT_SIGNING_KEYS": PRODUCTION_SIGNING_KEYS,
        "PROVISIONER_LOG_FORMAT": "json",
        **extra,
    }


class ApiProcess:
    """``provisioner api`` as its own process on 127.0.0.1:<free port> (metrics on another), ready once
    ``/healthz`` answers; stopped with SIGTERM. Its output is in ``output`` after ``__exit__``."""

    def __init__(self, redis_url: str, key_prefix: str, **extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = production_env(redis_url, key_prefix, PROVISIONER_API_METRICS_PORT=str(free_port()), **extra)
        self.output = ""

    def __enter__(self) -> ApiProcess:
        self.process = subprocess.Popen(
            [PROVISIONER, "api", "--port", str(self.port)],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"provisioner api did not start: {self.output}")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.output, _ = self.process.communicate(timeout=15)


def live_api(redis_url: str, key_prefix: str, **settings: str) -> LiveApi:
    return LiveApi(build_services(api_settings(redis_url, key_prefix, **settings), registry=CollectorRegistry()))


def sign(body: bytes, *, secret: str = SECRET, msg_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers for ``body`` (signed with the library, as an upstream would)."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode("utf-8"))
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}


class Upstream:
    """An upstream over real HTTP: every request signed unless told otherwise."""

    def __init__(self, url: str, *, secret: str = SECRET) -> None:
        self.client = httpx.Client(base_url=url, timeout=10)
        self.secret = secret

    def close(self) -> None:
        self.client.close()

    def post(self, document: Any, *, headers: dict[str, str] | None = None, raw: bytes | None = None) -> httpx.Response:
        body = raw if raw is not None else json.dumps(document).encode()
        signed = {"content-type": "application/json", **sign(body, secret=self.secret), **(headers or {})}
        return self.client.post("/v1/events", content=body, headers=signed)

    def customer(self, customer_id: str) -> httpx.Response:
        from urllib.parse import quote

        path = f"/v1/customers/{quote(customer_id, safe='')}"
        return self.client.get(path, headers=sign(f"GET {path}".encode(), secret=self.secret))


def now_iso(minutes_ago: float = 1.0) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(kind: str, customer: str, *, eid: str | None = None, minutes_ago: float = 1.0, **data: Any) -> dict[str, Any]:
    """One event of ``customer`` that the contract accepts now."""
    return {
        "id": eid or f"{customer}-{kind.split('.')[1]}",
        "type": kind,
        "customer_id": customer,
        "occurred_at": now_iso(minutes_ago),
        "data": data,
    }


def approval(customer: str, *, eid: str | None = None, **extra: Any) -> dict[str, Any]:
    return event(
        "customer.kyc_approved",
        customer,
        eid=eid,
        minutes_ago=0.5,
        permissions=["general", "spot"],
        ip_whitelist=["203.0.114.10"],
        funding=[{"currency": "USDT", "amount": "250"}],
        **extra,
    )
