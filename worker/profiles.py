"""Settings profiles: what each process requires, with its development defaults, and what it is never given.

``Settings.from_env(profile=...)`` reads them. The worker (and the operator's commands) need every secret; the HTTP
API needs Redis and three settings of its own, and never reads the exchange credentials or any key that opens
what is sealed — even when its environment has them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from enum import StrEnum

__all__ = [
    "API_WITHHELD",
    "DEV_DEFAULT_API_SETTINGS",
    "DEV_DEFAULT_SECRETS",
    "DEV_EVENT_SIGNING_KEYS",
    "Profile",
    "webhook_secrets_ok",
]

DEV_EVENT_SIGNING_KEYS = "dev1=ZGV2ZWxvcG1lbnQtZXZlbnQtc2lnbmluZy1rZXkhISE="
"""Development default of ``PROVISIONER_EVENT_SIGNING_KEYS``, shared by the worker and the API."""

DEV_DEFAULT_SECRETS: Mapping[str, str] = {
    "KUCOIN_API_KEY": "sandbox-management-key",
    "KUCOIN_API_SECRET": "sandbox-management-secret",
    "KUCOIN_API_PASSPHRASE": "sandbox-management-passphrase",
    "KUCOIN_BROKER_PARTNER": "sandbox-partner",
    "KUCOIN_BROKER_KEY": "sandbox-broker-key",
    "KUCOIN_BROKER_NAME": "sandboxND",
    "KUCOIN_TRADING_API_KEY": "sandbox-trading-key",
    "KUCOIN_TRADING_API_SECRET": "sandbox-trading-secret",
    "KUCOIN_TRADING_API_PASSPHRASE": "sandbox-trading-passphrase",
    "PROVISIONER_NAME_SECRET": "development-name-secret-do-not-use-in-production",
    # Fernet keys (url-safe base64 of 32 bytes), as "key_id=key" pairs; the first one encrypts.
    "PROVISIONER_ENCRYPTION_KEYS": "dev1=ZGV2ZWxvcG1lbnQta2V5LW5vdC1mb3ItcHJvZHVjdCE=",
    # X25519 private keys (base64 of 32 raw bytes), as "key_id=key" pairs: open KYC documents sealed at the edge
    "PROVISIONER_INTAKE_PRIVATE_KEYS": "dev1=aW50YWtlLWtleS1mb3ItZGV2ZWxvcG1lbnQtb25seSE=",
    # HMAC-SHA256 keys (base64 of 32-64 random bytes), as "key_id=key" pairs: the first signs event messages, any
    # listed one verifies (worker.event_proof)
    "PROVISIONER_EVENT_SIGNING_KEYS": DEV_EVENT_SIGNING_KEYS,
}
"""Development defaults for every secret of the worker. Used only when ``PROVISIONER_ENV=development`` (the
default) and the variable is unset; production refuses to start without them. Shared with the simulator."""

DEV_DEFAULT_API_SETTINGS: Mapping[str, str] = {
    "PROVISIONER_NAME_SECRET": DEV_DEFAULT_SECRETS["PROVISIONER_NAME_SECRET"],
    # Standard Webhooks secrets: "whsec_" + base64 of 24-64 random bytes, comma-separated; any one verifies
    "PROVISIONER_API_SECRETS": "whsec_ZGV2ZWxvcG1lbnQtd2ViaG9vay1zZWNyZXQtbm90LWZvci1wcm9k",
    # the public half of the development PROVISIONER_INTAKE_PRIVATE_KEYS
    "PROVISIONER_INTAKE_PUBLIC_KEY": "dev1=2UXdWYX0TWfTyFETEYIUHc3zXErVVmXOkLM4exRohVY=",
    # the keys that sign event messages, so the worker takes them (worker.event_proof)
    "PROVISIONER_EVENT_SIGNING_KEYS": DEV_EVENT_SIGNING_KEYS,
}
"""What the API process (``Profile.API``) needs, with its development defaults: the name secret (customer refs
are keyed hashes of customer ids), the request-signing secrets, the public intake key it seals KYC documents
to, and the event-signing keys its messages carry a proof from. Production refuses to start the API without
them, and needs nothing else."""

API_WITHHELD: tuple[str, ...] = (
    *(name for name in DEV_DEFAULT_SECRETS if name.startswith("KUCOIN_")),
    "KUCOIN_HTTP_PROXY",
    "PROVISIONER_NAME_SECRETS",
    "PROVISIONER_ENCRYPTION_KEYS",
    "PROVISIONER_DELIVERY_KEYS",
    "PROVISIONER_INTAKE_PRIVATE_KEYS",
    "PROVISIONER_WEBHOOK_SECRET",
)
"""Secrets the API process never reads, even when its environment has them: the exchange credentials, every key
that opens what is sealed (at rest, in delivery, or at the edge), and the later name-secret versions (it derives
only customer refs, which stay on version 1). Its settings hold ``None`` for them."""


class Profile(StrEnum):
    """Which process the settings are for: what it requires, and what it is not given."""

    WORKER = "worker"
    """The worker and the operator's commands: everything."""
    API = "api"
    """``provisioner api``: Redis, its own secrets (``DEV_DEFAULT_API_SETTINGS``), none of ``API_WITHHELD``."""


def webhook_secrets_ok(value: str) -> bool:
    """Comma-separated ``whsec_<base64>`` secrets of 24 to 64 bytes each (the Standard Webhooks spec's range)."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    for part in parts:
        if not part.startswith("whsec_"):
            return False
        try:
            raw = base64.b64decode(part.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            return False
        if not 24 <= len(raw) <= 64:
            return False
    return bool(parts)
