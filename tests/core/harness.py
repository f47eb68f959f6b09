"""A provisioning rig for tests: real Redis, the in-process simulator, one fake clock for both, and helpers to
publish events, drive reconciles to quiescence and look at both sides."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from handlers.commands import Idle
from handlers.events import parse_event
from sandbox import Exchange, SandboxConfig
from worker.bootstrap import App, build_app
from worker.exchange.http import Observer
from worker.exchange.signing import sign_headers
from worker.intake import Accepted
from worker.provisioning.reconciler import RunReport, StepsBlocked
from worker.settings import KucoinCredentials, Settings
from worker.verify import Violation, check

BASE = 1_795_000_000.0  # 2026-11-18T11:06:40Z, just after the events below occurred


class Clock:
    def __init__(self, now: float = BASE) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: int) -> None:
        self.now += ms / 1000


class Crash(BaseException):
    """Stands for the process dying at this line: nothing of ours catches a BaseException."""


@dataclass
class CrashingTransport(httpx.BaseTransport):
    """Forwards to the simulator, but "kills the process" before or after the Nth request to a path."""

    inner: httpx.BaseTransport
    plan: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    seen: dict[tuple[str, str], int] = field(default_factory=dict)
    after: list[tuple[str, str, Callable[[], None]]] = field(default_factory=list)
    """(method, path prefix, callback): run the callback once, right after the first matching response."""
    busy: dict[tuple[str, str], int] = field(default_factory=dict)
    """(method, path) → how many more requests the exchange turns away with its 429 (nothing reaches it)."""

    def crash(self, method: str, path: str, *, when: str, nth: int = 1) -> None:
        self.plan[(method, path)] = (when, nth)

    def turn_away(self, method: str, path: str, *, times: int) -> None:
        """Answer the next ``times`` requests to ``path`` as KuCoin does over its rate limit (HTTP 429, 429000)."""
        self.busy[(method, path)] = times

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.path)
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.busy.get(key, 0) > 0:
            self.busy[key] -= 1
            return httpx.Response(429, json={"code": "429000", "msg": "Too Many Requests"}, request=request)
        planned = self.plan.get(key)
        hit = planned is not None and planned[1] == self.seen[key]
        if hit and planned and planned[0] == "before":
            del self.plan[key]
            raise Crash(f"crash before {key}")
        response = self.inner.handle_request(request)
        for hook in list(self.after):
            if request.method == hook[0] and request.url.path.startswith(hook[1]):
                self.after.remove(hook)
                hook[2]()
        if hit and planned and planned[0] == "after":
            del self.plan[key]
            response.read()
            raise Crash(f"crash after {key}")
        return response


STATE_DIR = Path(tempfile.gettempdir()) / f"provisioner-test-state-{os.getpid()}"
"""Where the tests' hosts keep their state-epoch mirrors (one file per prefix; removed after the run)."""


def settings_for(redis_url: str, key_prefix: str, **extra: str) -> Settings:
    env = {
        "REDIS_URL": redis_url,
        "PROVISIONER_REDIS_PREFIX": key_prefix,
        "PROVISIONER_STATE_DIR": str(STATE_DIR / key_prefix),
        "KUCOIN_BROKER_BASE_URL": "http://sandbox",
        "KUCOIN_SPOT_BASE_URL": "http://sandbox",
        "KUCOIN_HTTP_CONNECT_TIMEOUT": "1",
        "KUCOIN_HTTP_READ_TIMEOUT": "2",
        "KUCOIN_HTTP_WRITE_TIMEOUT": "1",
        "KUCOIN_HTTP_POOL_TIMEOUT": "1",
        "PROVISIONER_UNKNOWN_OUTCOME_SETTLE_MS": "1000",
        "PROVISIONER_ROTATION_GRACE_SECONDS": "60",
        "PROVISIONER_LOCK_TTL_MS": "10000",
        "PROVISIONER_FUNDING_CAP_PER_CUSTOMER": "USDT=1000,BTC=1,ETH=5,USDC=1000,KCS=100",
        "PROVISIONER_FUNDING_CAP_PER_DAY": "USDT=100000,BTC=10,ETH=50,USDC=1000,KCS=1000",
        "PROVISIONER_RATE_LIMIT": "false",  # the shared limiter runs on Redis' real clock; these tests fake time
        **extra,
    }
    settings, _ = Settings.from_env(env)
    return settings


class Rig:
    def __init__(
        self,
        redis_url: str,
        key_prefix: str,
        *,
        config: SandboxConfig | None = None,
        observers: Sequence[Observer] = (),
        **settings: str,
    ) -> None:
        """``observers``: told every exchange call (as the worker's metrics are: ``Metrics.observe_call``)."""
        self.clock = Clock()
        self.exchange = Exchange(config or SandboxConfig(), clock=self.clock, sleep=lambda s: None)
        self.transport = CrashingTransport(self.exchange.transport())
        self.settings = settings_for(redis_url, key_prefix, **settings)
        self.app: App = build_app(self.settings, transport=self.transport, clock=self.clock, observers=observers)
        self.app.state.establish(ask_exchange=False)  # a new key prefix: a new deployment (as the worker's gate)
        self.reports: list[RunReport] = []
        self.blocked: list[StepsBlocked] = []

    def close(self) -> None:
        self.app.close()

    # --- events ---------------------------------------------------------------------------------------------
    def publish(self, *events: dict[str, Any]) -> list[str]:
        refs = []
        for event in events:
            outcome = self.app.intake.accept(event)
            assert isinstance(outcome, Accepted), outcome
            refs.append(outcome.ref)
        return refs

    # --- reconcile ------------------------------------------------------------------------------------------
    def run(self, ref: str, *, retry_blocked: bool = False) -> RunReport | None:
        try:
            report = self.app.reconciler.run(ref, retry_blocked=retry_blocked)
        except StepsBlocked as exc:
            self.blocked.append(exc)
            return None
        self.reports.append(report)
        return report

    def settle(
        self,
        ref: str,
        *,
        max_rounds: int = 40,
        horizon_ms: int = 3_600_000,
        on_crash: Callable[[Crash], None] | None = None,
        after_run: Callable[[], None] | None = None,
    ) -> RunReport | None:
        """Reconcile until nothing is due within ``horizon_ms``, jumping the clock to each wake-up."""
        report = None
        for _ in range(max_rounds):
            self.app.due.cancel(ref)  # taken off the schedule as the scheduler's claim does: a run re-schedules it
            try:
                report = self.run(ref)
            except Crash as crash:
                if on_crash:
                    on_crash(crash)
                continue
            if after_run:
                after_run()
            wake = self.app.due.next_due_ms(ref)
            now = int(self.clock() * 1000)
            if wake is None or wake - now > horizon_ms:
                return report
            if wake > now:
                self.clock.advance_ms(wake - now)
        raise AssertionError(f"customer {ref} did not settle: {report}")

    # --- looking --------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return self.exchange.state_snapshot()

    def outbound(self) -> list[dict[str, Any]]:
        rows = self.app.redis.xrange(self.app.keys.outbound)
        return [json.loads(fields["event"]) for _, fields in rows]

    def record(self, ref: str) -> Any:
        return self.app.store.load(ref)

    def verify(self, published: Iterable[dict[str, Any]]) -> list[Violation]:
        """What `provisioner verify` (``worker.verify``) finds after ``published``: journal, keys, money."""
        app = self.app
        return check(
            [parse_event(e, None) for e in published],
            self.state(),
            app.store.load,
            app.store.journal,
            naming=app.policy.naming,
            keyring=app.keyring,
            probe=self.key_works,
            funding_caps=app.settings.funding_cap_per_customer,
            daily_caps=app.settings.funding_cap_per_day,
        )

    def key_works(self, api_key: str, secret: str, passphrase: str) -> bool:
        """Prove a secret is the one the exchange issued: sign GET /api/v1/accounts with it."""
        creds = KucoinCredentials(api_key=api_key, api_secret=secret, api_passphrase=passphrase)
        headers = sign_headers(
            creds, timestamp_ms=int(self.clock() * 1000), method="GET", path="/api/v1/accounts", broker=False
        )
        with httpx.Client(transport=self.exchange.transport(), base_url="http://sandbox") as client:
            response = client.get("/api/v1/accounts", headers={**headers, "Content-Type": "application/json"})
        return response.status_code == 200 and response.json()["code"] == "200000"


def events_for(
    customer: str, *, funding: Iterable[tuple[str, str]] = (("USDT", "250"),), ips: tuple[str, ...] = ("203.0.114.10",)
) -> dict[str, dict[str, Any]]:
    """A full lifecycle for ``customer`` (occurred_at a minute apart, just before the rig's clock)."""

    def ev(kind: str, minute: int, **data: Any) -> dict[str, Any]:
        slug = "".join(ch if ch.isalnum() else "-" for ch in customer)
        return {
            "id": f"{slug}-{kind.split('.')[1]}",
            "type": kind,
            "customer_id": customer,
            "occurred_at": f"2026-11-18T10:{minute:02d}:00Z",
            "data": data,
        }

    return {
        "created": ev("customer.created", 0),
        "kyc": ev(
            "customer.kyc_approved",
            1,
            permissions=["general", "spot"],
            ip_whitelist=list(ips),
            funding=[{"currency": c, "amount": a} for c, a in funding],
        ),
        "ip": ev("customer.ip_changed", 2, ip_whitelist=["198.51.101.7", "198.51.101.8"]),
        "rotate": ev("customer.key_rotation_requested", 3),
        "offboard": ev("customer.offboarded", 4),
    }


def kyc_documents(first_name: str) -> dict[str, str]:
    """Proxy-KYC documents; the simulator rejects a first name of "REJECT"."""
    photo = "data:image/png;base64,iVBORw0KGgo="
    return {
        "first_name": first_name,
        "last_name": "Me",
        "issue_country": "DE",
        "birth_date": "1990-01-01",
        "identity_type": "passport",
        "identity_number": "P1",
        "expire_date": "2099-01-01",
        "front_photo": photo,
        "face_photo": photo,
    }


def idle(report: RunReport | None) -> bool:
    return report is not None and report.outcome == "idle"


__all__ = [
    "BASE",
    "Clock",
    "Crash",
    "CrashingTransport",
    "Idle",
    "Rig",
    "events_for",
    "idle",
    "kyc_documents",
    "settings_for",
]
