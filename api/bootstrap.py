"""The API's composition root: the one place that builds its concrete adapters from ``Settings`` (``Profile.API``).

The API holds Redis, the name secret (customer refs are keyed hashes of customer ids), its signing secrets, the
intake *public* key and the event-signing keys: no exchange credential, and no key that opens anything sealed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry

from api.app import ApiServices
from api.observe import ApiMetrics
from api.request_ids import RequestIds
from api.signing import SignatureVerifier
from handlers.naming import Naming
from worker.bootstrap import event_proofs, intake_sealer
from worker.customer_view import read_customer_view
from worker.runtime.admission import Admission, dramatiq_namespace
from worker.settings import Settings
from worker.store.customers import CustomerStore
from worker.store.epoch import StateGuard, check_naming
from worker.store.keys import Keys

__all__ = ["api_redis", "build_services"]


def api_redis(settings: Settings) -> redis.Redis:
    """The API's Redis client: short time-outs and no silent retries, so an outage is a prompt 503 (the caller
    retries, and the admission script makes a retry safe)."""
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def build_services(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    client: redis.Redis | None = None,
) -> ApiServices:
    """Everything the routes need. Raises ``SettingsError`` when a setting the API needs is unset."""
    r = client or api_redis(settings)
    keys = Keys(settings.key_prefix)
    naming = Naming(settings.secret("name_secret"), prefix=settings.account_name_prefix)
    admission = Admission(
        r,
        keys,
        naming,
        intake_sealer(settings),
        proofs=event_proofs(settings),
        currencies=frozenset(settings.currencies),
        namespace=dramatiq_namespace(settings.key_prefix),
        max_photo_bytes=settings.max_kyc_photo_bytes,
        clock=clock,
    )
    store = CustomerStore(r, keys, StateGuard(r, keys, None, clock=clock))  # reads only: no guarded write
    fingerprint = naming.fingerprint()

    def ready() -> None:
        """Redis answers, and this API names customers as the deployment does (else ``NamingMismatch``)."""
        r.ping()
        check_naming(r, keys, fingerprint, record=False)

    return ApiServices(
        admission=admission,
        customer=lambda customer_id: read_customer_view(store, naming, customer_id),
        ping=ready,
        verifier=SignatureVerifier.parse(settings.secret("api_secrets")),
        metrics=ApiMetrics(registry if registry is not None else CollectorRegistry()),
        request_ids=RequestIds(r, keys),
    )
