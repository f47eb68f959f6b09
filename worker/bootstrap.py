"""The composition root: the one place that builds concrete adapters (Redis, exchange client, keyrings) from
``Settings``. Everything else receives what it needs as arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import redis

from handlers.naming import Naming
from handlers.planner import Policy
from worker.crypto import Keyring
from worker.delivery import CredentialSealer, RecipientKey
from worker.exchange import ExchangeClient
from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.http import Observer, RateGate
from worker.intake import Intake
from worker.provisioning.context import Services
from worker.provisioning.reconciler import FAILURE_BACKSTOP_MS, Reconciler, StepObserver
from worker.ratelimit import PoolQuota, SharedRateLimiter, WaitingGate
from worker.settings import Settings
from worker.store.customers import CustomerStore
from worker.store.due import DueSchedule
from worker.store.epoch import Mirror, StateGuard, default_state_dir
from worker.store.keys import Keys
from worker.store.ledger import FundingLedger

__all__ = ["App", "build_app", "delivery_sealer", "exchange_traces", "policy_from", "redis_client", "state_mirror"]


def redis_client(settings: Settings) -> redis.Redis:
    """Our own Redis client (strings, not bytes), with time-outs so a dead Redis cannot hang a worker."""
    return redis.Redis.from_url(
        settings.redis_url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
    )


def delivery_sealer(settings: Settings) -> CredentialSealer:
    """How credentials are delivered: a JWE to ``PROVISIONER_DELIVERY_JWK``, the legacy Fernet keyring
    ``PROVISIONER_DELIVERY_KEYS``, or both while the upstream migrates (``worker.delivery``)."""
    recipient = RecipientKey.parse(settings.delivery_jwk) if settings.delivery_jwk else None
    legacy = (
        Keyring.parse(settings.secret("delivery_keys"), name="PROVISIONER_DELIVERY_KEYS")
        if settings.delivery_keys is not None
        else None
    )
    return CredentialSealer(recipient, legacy)


def policy_from(settings: Settings) -> Policy:
    """The planner's rules, from the settings."""
    return Policy(
        naming=Naming(settings.secret("name_secret"), prefix=settings.account_name_prefix),
        funding_caps=settings.funding_cap_per_customer,
        broker_wallet=settings.funding_from_wallet,
        sub_wallet=settings.funding_to_wallet,
        key_max_age_ms=settings.key_max_age_seconds * 1000,
        rotation_grace_ms=settings.rotation_grace_seconds * 1000,
        proxy_kyc=settings.proxy_kyc,
        kyc_poll_ms=settings.kyc_poll_seconds * 1000,
        resolve_delay_ms=_resolve_delay_ms(settings),
        transfer_resolve_delay_ms=_resolve_delay_ms(settings)
        + (0 if settings.client_oid_behaviour in ("dedupe", "reject") else settings.ledger_lag_ms),
        max_live_keys=settings.max_live_keys,
    )


def _resolve_delay_ms(settings: Settings) -> int:
    """Longer than any request can stay in flight, plus the configured margin."""
    return int(1000 * settings.request_bound_s) + settings.unknown_outcome_settle_ms


def state_mirror(settings: Settings) -> Mirror:
    """This host's mirror of the state epoch, one file per Redis database and key prefix."""
    url = urlsplit(settings.redis_url)
    where = f"{url.hostname or 'localhost'}:{url.port or 6379}{url.path or '/0'}#{settings.key_prefix}"
    directory = Path(settings.state_dir) if settings.state_dir else default_state_dir()
    return Mirror(directory, where)


def exchange_traces(exchange: ExchangeClient, naming: Naming) -> Callable[[], str | None]:
    """Whether the exchange has sub-accounts named the way we name ours (asked only when Redis holds no state of
    ours): the first and the last page of the listing, whichever order the exchange sorts in."""

    def look() -> str | None:
        accounts = exchange.sub_accounts
        first = accounts.page(current_page=1, page_size=100)
        names = [s.account_name for s in first.items]
        if first.total_page > 1:
            names += [s.account_name for s in accounts.page(current_page=first.total_page, page_size=100).items]
        ours = [n for n in names if naming.is_account_name(n)]
        return f"{len(ours)} sub-account(s) named like ours, e.g. {ours[0]}" if ours else None

    return look


def _admission(limiter: SharedRateLimiter) -> Callable[[str], None]:
    def admit(endpoint: str) -> None:
        limiter.preadmit(ENDPOINTS[endpoint])

    return admit


@dataclass
class App:
    """Every long-lived object of one worker process (or one CLI invocation)."""

    settings: Settings
    redis: redis.Redis
    keys: Keys
    store: CustomerStore
    due: DueSchedule
    ledger: FundingLedger
    state: StateGuard
    exchange: ExchangeClient
    keyring: Keyring
    delivery: CredentialSealer
    policy: Policy
    reconciler: Reconciler
    intake: Intake
    clock: Callable[[], float]

    def close(self) -> None:
        self.exchange.close()
        self.redis.close()


def build_app(
    settings: Settings,
    *,
    transport: httpx.BaseTransport | None = None,
    gate: RateGate | None = None,
    observers: Sequence[Observer] = (),
    on_step: StepObserver | None = None,
    on_transfer: Callable[[str, str, Decimal], None] | None = None,
    clock: Callable[[], float] = time.time,
    client: redis.Redis | None = None,
    wait_for_quota: bool = False,
) -> App:
    """Build the app. ``transport`` replaces the network (the simulator in tests); ``clock`` is epoch seconds;
    ``wait_for_quota``: exchange calls wait for the shared rate limit instead of raising (one-off commands)."""
    r = client or redis_client(settings)
    keys = Keys(settings.key_prefix)
    policy = policy_from(settings)
    state = StateGuard(r, keys, state_mirror(settings), clock=clock)
    store = CustomerStore(r, keys, state)
    due = DueSchedule(r, keys)
    ledger = FundingLedger(r, keys)
    limiter = None
    if gate is None and settings.rate_limit:
        limiter = SharedRateLimiter(
            r,
            keys,
            {
                "Broker": PoolQuota(settings.broker_quota, settings.rate_window_ms),
                "Management": PoolQuota(settings.management_quota, settings.rate_window_ms),
            },
            headroom=settings.rate_headroom,
        )
        gate = WaitingGate(limiter) if wait_for_quota else limiter
    exchange = ExchangeClient.from_settings(settings, transport=transport, gate=gate, observers=observers, clock=clock)
    state.traces = exchange_traces(exchange, policy.naming)
    keyring = Keyring.parse(settings.secret("encryption_keys"), name="PROVISIONER_ENCRYPTION_KEYS")
    delivery = delivery_sealer(settings)
    services = Services(
        store=store,
        exchange=exchange,
        keyring=keyring,
        delivery=delivery,
        ledger=ledger,
        policy=policy,
        daily_caps=settings.funding_cap_per_day,
        clock=clock,
        client_oid_behaviour=settings.client_oid_behaviour,
    )
    if on_transfer is not None:
        services = replace(services, on_transfer=on_transfer)
    services = replace(services, send_window_s=max(1.0, settings.lock_ttl_ms / 1000 - settings.request_bound_s - 2))
    if limiter is not None:
        services = replace(services, admit=_admission(limiter))
    reconciler = Reconciler(
        services,
        due,
        lock_ttl_ms=settings.lock_ttl_ms,
        on_step=on_step,
        # longer than the longest gap between two retries, so that a live retry chain keeps pushing it on
        failure_backstop_ms=max(FAILURE_BACKSTOP_MS, 3 * max(settings.max_backoff_ms, settings.auth_retry_delay_ms)),
    )
    intake = Intake(store, policy.naming, keyring, currencies=frozenset(settings.currencies), clock=clock)
    return App(
        settings, r, keys, store, due, ledger, state, exchange, keyring, delivery, policy, reconciler, intake, clock
    )
