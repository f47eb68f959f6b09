"""The composition root: the one place that builds concrete adapters (Redis, exchange client, keyrings) from
``Settings``. Everything else receives what it needs as arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import redis

from handlers.naming import Naming
from handlers.planner import Policy
from worker.crypto import Keyring
from worker.delivery import CredentialSealer, RecipientKey
from worker.event_proof import EventProofs
from worker.exchange import ExchangeClient
from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.http import Observer, RateGate
from worker.exchange.scope import CallScope
from worker.intake import Intake
from worker.provisioning.context import Services
from worker.provisioning.prefetch import StatusPrefetch
from worker.provisioning.reconciler import FAILURE_BACKSTOP_MS, Reconciler, StepObserver
from worker.ratelimit import PoolQuota, SharedRateLimiter, WaitingGate
from worker.sealing import IntakeKeys, IntakeSealer
from worker.settings import Settings
from worker.store.client import redis_client
from worker.store.customers import CustomerStore
from worker.store.due import DueSchedule
from worker.store.epoch import Mirror, StateGuard, default_state_dir
from worker.store.keys import Keys
from worker.store.ledger import FundingLedger
from worker.store.riders import Rider
from worker.store.transfer_facts import TransferFacts
from worker.webhooks.store import DeliveryStore

__all__ = [
    "App",
    "build_app",
    "delivery_sealer",
    "event_proofs",
    "exchange_traces",
    "intake_sealer",
    "policy_from",
    "redis_client",
    "state_mirror",
]


def intake_sealer(settings: Settings) -> IntakeSealer:
    """What the edge seals KYC documents to: ``PROVISIONER_INTAKE_PUBLIC_KEY``, or (in the worker's settings, where
    it may be unset) the public half of the first ``PROVISIONER_INTAKE_PRIVATE_KEYS``. Raises ``SettingsError``
    when neither is set."""
    if settings.intake_public_key is not None:
        return IntakeSealer.parse(settings.intake_public_key, name="PROVISIONER_INTAKE_PUBLIC_KEY")
    return intake_keys(settings).sealer()


def intake_keys(settings: Settings) -> IntakeKeys:
    """The worker's private intake keys. Raises ``SettingsError`` when unset."""
    return IntakeKeys.parse(settings.secret("intake_private_keys"), name="PROVISIONER_INTAKE_PRIVATE_KEYS")


def event_proofs(settings: Settings) -> EventProofs:
    """The keys that sign event messages and verify them (``worker.event_proof``). Raises ``SettingsError`` when
    ``PROVISIONER_EVENT_SIGNING_KEYS`` is unset."""
    return EventProofs.parse(settings.secret("event_signing_keys"), name="PROVISIONER_EVENT_SIGNING_KEYS")


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
        naming=Naming(
            settings.secret("name_secret"),
            prefix=settings.account_name_prefix,
            versions=settings.name_secret_versions(),
        ),
        funding_caps=settings.funding_cap_per_customer,
        broker_wallet=settings.funding_from_wallet,
        sub_wallet=settings.funding_to_wallet,
        key_max_age_ms=settings.key_max_age_seconds * 1000,
        rotation_grace_ms=settings.rotation_grace_seconds * 1000,
        proxy_kyc=settings.proxy_kyc,
        kyc_poll_ms=settings.kyc_poll_seconds * 1000,
        resolve_delay_ms=_resolve_delay_ms(settings),
        # every mode may decide from the ledger (a duplicate, a refused re-send, after a loss): after its lag
        transfer_resolve_delay_ms=_resolve_delay_ms(settings) + settings.ledger_lag_ms,
        max_live_keys=settings.max_live_keys,
        listing_lag_ms=settings.listing_lag_ms,
        unknown_outcome_max_ms=settings.unknown_outcome_max_seconds * 1000,
    )


def _resolve_delay_ms(settings: Settings) -> int:
    """Longer than any request can stay in flight and the exchange's listings can lag, plus the configured margin."""
    return int(1000 * settings.request_bound_s) + settings.unknown_outcome_settle_ms + settings.listing_lag_ms


def state_mirror(settings: Settings) -> Mirror:
    """This host's mirror of the state epoch, one file per Redis server, database and key prefix (the database as
    redis-py reads it from the URL: ``/N`` or ``?db=N``)."""
    kwargs = redis.ConnectionPool.from_url(settings.redis_url).connection_kwargs
    server = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    where = f"{server}/{kwargs.get('db', 0)}#{settings.key_prefix}"
    directory = Path(settings.state_dir) if settings.state_dir else default_state_dir()
    return Mirror(directory, where)


def exchange_traces(exchange: ExchangeClient, naming: Naming) -> Callable[[], str | None]:
    """Whether the exchange has sub-accounts named the way we name ours (asked only when Redis holds no state of
    ours): the whole listing, since other sub-accounts (an older system's, hand-made ones) may fill any page — and,
    the listing showing none, whether it shows every one the broker has: Get Broker Info counts a new sub-account
    at once, the listing only ``PROVISIONER_LISTING_LAG_MS`` later, so one too new to be listed may be ours. One Get
    Broker Info and one Get SubAccount page per 100 sub-accounts, once per empty Redis."""

    def look() -> str | None:
        size = exchange.broker.info().account_size  # first: a sub-account created after it is listed or not counted
        listed = [s.account_name for s in exchange.sub_accounts.iter_all()]
        ours = [name for name in listed if naming.is_account_name(name)]
        if ours:
            return f"{len(ours)} sub-account(s) named like ours, e.g. {ours[0]}"
        if size > len(listed):
            return (
                f"the broker has {size} sub-account(s) and {len(listed)} are listed: the others are too new to be "
                "listed and may be ours (start again once PROVISIONER_LISTING_LAG_MS has passed, or recover)"
            )
        return None

    return look


def _admit(limiter: SharedRateLimiter) -> Callable[[str, CallScope], Rider | None]:
    def admit(endpoint: str, scope: CallScope) -> Rider | None:
        return limiter.admit_rider(ENDPOINTS[endpoint], scope)

    return admit


def _refusal(limiter: SharedRateLimiter) -> Callable[[str, int], Exception]:
    def refusal(endpoint: str, wait_ms: int) -> Exception:
        return limiter.refusal(ENDPOINTS[endpoint], wait_ms)

    return refusal


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
    intake_keys: IntakeKeys
    """Open KYC documents sealed at the edge (``worker.sealing``)."""
    proofs: EventProofs
    """Sign event messages (publishing) and check them before intake (``worker.event_proof``)."""

    def close(self) -> None:
        if self.reconciler.services.prefetch is not None:
            self.reconciler.services.prefetch.close()
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
    state = StateGuard(r, keys, state_mirror(settings), clock=clock, naming_fingerprint=policy.naming.fingerprint())
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
        transfer_facts=TransferFacts(r, keys),
        clock=clock,
        client_oid_behaviour=settings.client_oid_behaviour,
        prefetch=StatusPrefetch() if settings.prefetch_transfer_status else None,
        read_wait_s=settings.request_bound_s,
        # the deployment's dispatchers decide whether a rotation waits for delivery, not this process's settings
        key_delivered_at=partial(DeliveryStore(r, keys).key_delivered_at, webhooks_here=bool(settings.webhook_url)),
    )
    if on_transfer is not None:
        services = replace(services, on_transfer=on_transfer)
    services = replace(services, send_window_s=max(1.0, settings.lock_ttl_ms / 1000 - settings.request_bound_s - 2))
    if limiter is not None:
        services = replace(services, admit=_admit(limiter), refusal=_refusal(limiter))
    reconciler = Reconciler(
        services,
        due,
        lock_ttl_ms=settings.lock_ttl_ms,
        on_step=on_step,
        # longer than the longest gap between two retries, so that a live retry chain keeps pushing it on
        failure_backstop_ms=max(FAILURE_BACKSTOP_MS, 3 * max(settings.max_backoff_ms, settings.auth_retry_delay_ms)),
    )
    intake = Intake(
        store,
        policy.naming,
        keyring,
        currencies=frozenset(settings.currencies),
        max_photo_bytes=settings.max_kyc_photo_bytes,
        clock=clock,
    )
    return App(
        settings,
        r,
        keys,
        store,
        due,
        ledger,
        state,
        exchange,
        keyring,
        delivery,
        policy,
        reconciler,
        intake,
        clock,
        intake_keys=intake_keys(settings),
        proofs=event_proofs(settings),
    )
