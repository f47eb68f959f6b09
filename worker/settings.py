"""Configuration: one frozen value read once from the environment (``Settings.from_env()``).

Nothing here runs at import time. ``from_env`` reads ``os.environ`` (or a mapping given for tests), fills
development defaults for missing secrets in development mode (and reports each one so the caller can warn),
refuses to start in production mode when a secret is missing, a development default or weak
(``worker.secret_strength``), when a URL would carry secrets in clear (``worker.wire``) or when a worker has no
personal-data retention period, and turns any malformed value into a ``SettingsError`` that names the variable
(never echoing a secret).

The ``KUCOIN_*`` names are a public interface: the simulator (``provisioner sandbox``) reads the same names with
the same development defaults, so worker and simulator agree with no configuration at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from handlers.events import MAX_PHOTO_BYTES
from worker.profiles import API_WITHHELD, DEV_DEFAULT_API_SETTINGS, DEV_DEFAULT_SECRETS, Profile, webhook_secrets_ok
from worker.secret_strength import published_defaults, secret_problems
from worker.wire import base_url_problems, redis_url_problems

__all__ = [
    "API_WITHHELD",
    "DEFAULT_FUNDING_CAP_PER_CUSTOMER",
    "DEFAULT_FUNDING_CAP_PER_DAY",
    "DEV_DEFAULT_API_SETTINGS",
    "DEV_DEFAULT_SECRETS",
    "DEV_DELIVERY_JWK",
    "DEV_WEBHOOK_SECRET",
    "RETENTION_UNSET",
    "Environment",
    "KucoinCredentials",
    "Profile",
    "Settings",
    "SettingsError",
    "ignored_proxy_variables",
    "parse_name_secret_versions",
]

KUCOIN_BROKER_HOST = "https://api-broker.kucoin.com"
"""KuCoin's host for the 16 ND-broker endpoints (docs/kucoin-api.md §1)."""
KUCOIN_SPOT_HOST = "https://api.kucoin.com"
"""KuCoin's spot host, used for the one spot read the worker needs (a sub-account's balances)."""

DEV_DELIVERY_JWK = (
    '{"kty":"EC","crv":"P-256","x":"JInMxUij4L5xjvwQqxuMow05-5cigh0ABk8XG9lpmmM",'
    '"y":"kmGHcQmV5sNVU_8qbLWmy3hOqnzIi2v4H7hs5cHahhc"}'
)
"""Development default of ``PROVISIONER_DELIVERY_JWK`` (when neither it nor ``PROVISIONER_DELIVERY_KEYS`` is set):
a public key whose private half is published in ``tests/webhooks/keys.py``, so it protects nothing."""
DEV_WEBHOOK_SECRET = "whsec_ZGV2ZWxvcG1lbnQtd2ViaG9vay1zZWNyZXQtbm90LWY="  # noqa: S105 - a published dev default
"""Development default of ``PROVISIONER_WEBHOOK_SECRET`` (when a webhook URL is set and the secret is not)."""

DEFAULT_FUNDING_CAP_PER_CUSTOMER: Mapping[str, Decimal] = MappingProxyType(
    {
        "USDT": Decimal("10000"),
        "USDC": Decimal("10000"),
        "BTC": Decimal("0.5"),
        "ETH": Decimal("5"),
        "KCS": Decimal("1000"),
    }
)
"""The per-customer cap of each currency ``PROVISIONER_FUNDING_CAP_PER_CUSTOMER`` does not name."""
DEFAULT_FUNDING_CAP_PER_DAY: Mapping[str, Decimal] = MappingProxyType(
    {
        "USDT": Decimal("1000000"),
        "USDC": Decimal("1000000"),
        "BTC": Decimal("50"),
        "ETH": Decimal("500"),
        "KCS": Decimal("100000"),
    }
)
"""The Special Account's daily cap of each currency ``PROVISIONER_FUNDING_CAP_PER_DAY`` does not name."""
_DEFAULT_CAPS = {
    "funding_cap_per_customer": DEFAULT_FUNDING_CAP_PER_CUSTOMER,
    "funding_cap_per_day": DEFAULT_FUNDING_CAP_PER_DAY,
}


RETENTION_UNSET = (
    "production mode needs PROVISIONER_PERSONAL_DATA_RETENTION_DAYS, which is unset: how many days after a "
    "customer's close its personal data (upstream id, KYC documents) is erased; set it to the retention your legal "
    "obligations require (0: at the close), or a closed customer's personal data would be kept indefinitely"
)
"""Why production refuses to start a worker (or an operator's command) without a retention period."""


class SettingsError(Exception):
    """A setting is missing (production) or malformed; the message names every offending variable."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


def _parse_amount_map(raw: str, *, name: str) -> dict[str, Decimal]:
    """Parse ``"USDT=1000,BTC=0.05"`` into ``{"USDT": Decimal("1000"), ...}``; amounts must be > 0."""
    result: dict[str, Decimal] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        currency, sep, amount = part.partition("=")
        currency = currency.strip().upper()
        if not sep or not currency.isalnum():
            raise ValueError(f"{name}: expected CURRENCY=AMOUNT pairs, got {part!r}")
        try:
            value = Decimal(amount.strip())
        except InvalidOperation as exc:
            raise ValueError(f"{name}: {amount.strip()!r} is not a decimal amount") from exc
        if not value.is_finite() or value <= 0:
            raise ValueError(f"{name}: amount for {currency} must be positive")
        result[currency] = value
    return result


class Settings(BaseSettings):
    """Every setting of the worker, the CLI and the demo. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True, env_ignore_empty=True)

    environment: Environment = Field(Environment.DEVELOPMENT, alias="PROVISIONER_ENV")
    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL", repr=False)
    """It may hold Redis's password: kept out of ``repr``; print it through ``worker.wire.redacted_url``."""
    allow_plaintext_redis: bool = Field(False, alias="PROVISIONER_ALLOW_PLAINTEXT_REDIS")
    """Production refuses ``redis://`` (no TLS) unless this is set: for a Redis on loopback or a sidecar."""
    key_prefix: str = Field("prov", alias="PROVISIONER_REDIS_PREFIX", pattern=r"^[A-Za-z0-9_.-]{1,32}$")

    # --- exchange ---------------------------------------------------------------------------------------
    broker_base_url: str = Field(KUCOIN_BROKER_HOST, alias="KUCOIN_BROKER_BASE_URL", pattern=r"^https?://")
    spot_base_url: str = Field(KUCOIN_SPOT_HOST, alias="KUCOIN_SPOT_BASE_URL", pattern=r"^https?://")
    api_key: SecretStr | None = Field(None, alias="KUCOIN_API_KEY")
    api_secret: SecretStr | None = Field(None, alias="KUCOIN_API_SECRET")
    api_passphrase: SecretStr | None = Field(None, alias="KUCOIN_API_PASSPHRASE")
    broker_partner: SecretStr | None = Field(None, alias="KUCOIN_BROKER_PARTNER")
    broker_key: SecretStr | None = Field(None, alias="KUCOIN_BROKER_KEY")
    broker_name: SecretStr | None = Field(None, alias="KUCOIN_BROKER_NAME")
    trading_api_key: SecretStr | None = Field(None, alias="KUCOIN_TRADING_API_KEY")
    trading_api_secret: SecretStr | None = Field(None, alias="KUCOIN_TRADING_API_SECRET")
    trading_api_passphrase: SecretStr | None = Field(None, alias="KUCOIN_TRADING_API_PASSPHRASE")
    http_connect_timeout: float = Field(3.0, alias="KUCOIN_HTTP_CONNECT_TIMEOUT", gt=0, le=60)
    http_read_timeout: float = Field(10.0, alias="KUCOIN_HTTP_READ_TIMEOUT", gt=0, le=120)
    http_write_timeout: float = Field(5.0, alias="KUCOIN_HTTP_WRITE_TIMEOUT", gt=0, le=60)
    http_pool_timeout: float = Field(5.0, alias="KUCOIN_HTTP_POOL_TIMEOUT", gt=0, le=60)
    http_max_connections: int = Field(20, alias="KUCOIN_HTTP_MAX_CONNECTIONS", ge=1, le=1000)
    http_proxy: SecretStr | None = Field(None, alias="KUCOIN_HTTP_PROXY")
    """An HTTP(S) proxy every exchange request goes through (it may carry credentials, hence secret). The
    environment's ``HTTPS_PROXY``/``HTTP_PROXY`` are not read: configuration is this value only."""

    # --- provisioning policy ----------------------------------------------------------------------------
    name_secret: SecretStr | None = Field(None, alias="PROVISIONER_NAME_SECRET")
    name_secrets: SecretStr | None = Field(None, alias="PROVISIONER_NAME_SECRETS")
    """Later name-secret versions, ``"2=<secret>[,3=<secret>]"``: new customers' sub-account names derive from the
    highest; existing customers keep theirs (``handlers.naming``). Never remove a version that named customers."""
    account_name_prefix: str = Field("nd", alias="PROVISIONER_ACCOUNT_PREFIX", pattern=r"^[a-z][a-z0-9]{1,7}$")
    encryption_keys: SecretStr | None = Field(None, alias="PROVISIONER_ENCRYPTION_KEYS")
    delivery_keys: SecretStr | None = Field(None, alias="PROVISIONER_DELIVERY_KEYS")
    """The legacy Fernet keyring of delivered credentials: set only while the upstream migrates to the JWE
    (``worker.delivery``)."""
    delivery_jwk: str | None = Field(None, alias="PROVISIONER_DELIVERY_JWK")
    """The upstream's public JWK: delivered credentials are a JWE encrypted to it (``worker.delivery``)."""
    currencies: Annotated[tuple[str, ...], NoDecode] = Field(
        ("USDT", "USDC", "BTC", "ETH", "KCS"), alias="PROVISIONER_CURRENCIES"
    )
    funding_cap_per_customer: Annotated[dict[str, Decimal], NoDecode] = Field(
        default_factory=dict, alias="PROVISIONER_FUNDING_CAP_PER_CUSTOMER", validate_default=True
    )
    """Total funding per customer, by currency: the caps set, over ``DEFAULT_FUNDING_CAP_PER_CUSTOMER`` for every
    configured currency not set."""
    funding_cap_per_day: Annotated[dict[str, Decimal], NoDecode] = Field(
        default_factory=dict, alias="PROVISIONER_FUNDING_CAP_PER_DAY", validate_default=True
    )
    """The Special Account's funding per UTC day, by currency: the caps set, over ``DEFAULT_FUNDING_CAP_PER_DAY``."""
    funding_from_wallet: str = Field("MAIN", alias="PROVISIONER_FUNDING_FROM_WALLET", pattern="^(MAIN|TRADE)$")
    funding_to_wallet: str = Field("TRADE", alias="PROVISIONER_FUNDING_TO_WALLET", pattern="^(MAIN|TRADE)$")
    key_max_age_seconds: int = Field(90 * 86400, alias="PROVISIONER_KEY_MAX_AGE_SECONDS", ge=60)
    rotation_grace_seconds: int = Field(3600, alias="PROVISIONER_ROTATION_GRACE_SECONDS", ge=0)
    proxy_kyc: bool = Field(False, alias="PROVISIONER_PROXY_KYC")
    max_kyc_photo_bytes: int = Field(
        MAX_PHOTO_BYTES, alias="PROVISIONER_MAX_KYC_PHOTO_BYTES", ge=1024, le=MAX_PHOTO_BYTES
    )
    """The largest KYC photo an approval may carry, decoded: at most KuCoin's 2 MiB. Lower it to bound what one
    event stores in Redis (about 4.5 times the event while it is queued and stored, see docs/integration.md)."""
    personal_data_retention_days: int | None = Field(
        None, alias="PROVISIONER_PERSONAL_DATA_RETENTION_DAYS", ge=0, le=36500
    )
    """Days after a customer's close until the workers erase its personal data (upstream id, KYC documents;
    ``worker.erasure``), keeping the financial audit trail. Required in production (``RETENTION_UNSET``): the
    broker's legal retention obligation. Unset in development: kept until ``provisioner customer forget``."""
    kyc_poll_seconds: int = Field(60, alias="PROVISIONER_KYC_POLL_SECONDS", ge=1)
    lock_ttl_ms: int = Field(45_000, alias="PROVISIONER_LOCK_TTL_MS", ge=5_000)
    unknown_outcome_settle_ms: int = Field(15_000, alias="PROVISIONER_UNKNOWN_OUTCOME_SETTLE_MS", ge=0)
    unknown_outcome_max_seconds: int = Field(
        86_400, alias="PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS", ge=60, le=30 * 86_400
    )
    """How long an exchange write may go on failing, counted from its first attempt: a key's update (Modify
    SubAccount API) unknown on every send, and a write the exchange shows not done after every attempt (a create,
    an issuance, a revocation, a KYC submission, a funding line, a sweep; ``planner.retry_overdue``), are then
    blocked for an operator, and a transfer re-sent under its clientOid (where the exchange deduplicates or refuses
    repeats) is judged from the Special Account's ledger instead. At most 30 days: the ledger can be searched 31
    days back."""
    client_oid_behaviour: str = Field(
        "unknown", alias="PROVISIONER_CLIENT_OID_BEHAVIOUR", pattern="^(dedupe|reject|accept|unknown)$"
    )
    """What KuCoin does with a repeated transfer clientOid (undocumented; ``provisioner exchange probe-client-oid``
    finds out). ``unknown`` is the safe default: a lost transfer is then settled from the Special Account's ledger
    only, never by sending it again."""
    prefetch_transfer_status: bool = Field(True, alias="PROVISIONER_PREFETCH_TRANSFER_STATUS")
    """Read a just-accepted transfer's status on a thread of its own while the customer's next write goes on
    (``worker.provisioning.prefetch``): ready after three calls' time, not four. Off: read when confirming."""
    ledger_lag_ms: int = Field(30_000, alias="PROVISIONER_LEDGER_LAG_MS", ge=0, le=3_600_000)
    """How long the Special Account's ledger may take to list a transfer: a lost transfer is judged from the ledger
    only this long after its last send."""
    listing_lag_ms: int = Field(30_000, alias="PROVISIONER_LISTING_LAG_MS", ge=0, le=3_600_000)
    """How long the exchange may take to list a sub-account or key it has just created: a lost create is judged
    from a listing only this long after it was sent, and a customer is closed only after a listing this long
    after its last revocation."""
    max_live_keys: int = Field(5, alias="PROVISIONER_MAX_LIVE_KEYS", ge=2, le=20)
    state_dir: str | None = Field(None, alias="PROVISIONER_STATE_DIR")
    """Where each host keeps its mirror of the state epoch (outside Redis); default under ``~/.local/state``."""
    allow_volatile_redis: bool = Field(False, alias="PROVISIONER_ALLOW_VOLATILE_REDIS")
    """Production refuses a Redis without ``appendonly yes`` unless this is set (then a Redis restart is detected
    as a lost state, and the workers halt for ``provisioner recover``)."""

    broker_quota: int = Field(2000, alias="PROVISIONER_BROKER_QUOTA", ge=1)
    management_quota: int = Field(2000, alias="PROVISIONER_MANAGEMENT_QUOTA", ge=1)
    rate_window_ms: int = Field(30_000, alias="PROVISIONER_RATE_WINDOW_MS", ge=100)
    rate_headroom: float = Field(0.03, alias="PROVISIONER_RATE_HEADROOM", ge=0, le=0.5)
    rate_limit: bool = Field(True, alias="PROVISIONER_RATE_LIMIT")

    # --- webhooks (worker.webhooks) -------------------------------------------------------------------
    webhook_url: str | None = Field(None, alias="PROVISIONER_WEBHOOK_URL", pattern=r"^https?://[^\s]+$")
    """Where every outbound event is POSTed; unset: no webhooks (the stream only)."""
    webhook_secret: SecretStr | None = Field(None, alias="PROVISIONER_WEBHOOK_SECRET")
    webhook_concurrency: int = Field(16, alias="PROVISIONER_WEBHOOK_CONCURRENCY", ge=1, le=256)
    webhook_timeout_seconds: float = Field(10.0, alias="PROVISIONER_WEBHOOK_TIMEOUT_SECONDS", gt=0, le=120)
    webhook_min_backoff_ms: int = Field(5_000, alias="PROVISIONER_WEBHOOK_MIN_BACKOFF_MS", ge=10)
    webhook_max_backoff_ms: int = Field(3_600_000, alias="PROVISIONER_WEBHOOK_MAX_BACKOFF_MS", ge=100)
    webhook_retry_horizon_seconds: int = Field(
        3 * 86_400, alias="PROVISIONER_WEBHOOK_RETRY_HORIZON_SECONDS", ge=60, le=30 * 86_400
    )
    """How long a delivery is retried (from its first attempt) before it becomes a delivery dead letter."""

    # --- runtime -----------------------------------------------------------------------------------------
    worker_processes: int = Field(2, alias="PROVISIONER_WORKER_PROCESSES", ge=1, le=64)
    worker_threads: int = Field(32, alias="PROVISIONER_WORKER_THREADS", ge=1, le=256)
    """Threads per worker process. A thread spends most of a customer waiting on the exchange (four sequential
    calls of about 100 ms each in production) and little on CPU, so throughput follows the threads in flight, not
    the cores: 2 × 8 reached 9.8× the sequential SDK script at 100 ms latency, 2 × 32 about 35×; at 0 ms, 32
    threads took 4 MB more peak RSS per process than 8 (82 against 78 MB; bench/README.md)."""
    idle_poll_ms: int = Field(50, alias="PROVISIONER_IDLE_POLL_MS", ge=5, le=1_000)
    """How long an idle worker process sleeps at most between two looks at an empty event queue
    (``worker.runtime.prompt_broker``): the longest an event waits for a thread when the worker is idle."""
    recovery_seconds: int = Field(30, alias="PROVISIONER_RECOVERY_SECONDS", ge=5, le=3600)
    sweep_stale_seconds: int = Field(120, alias="PROVISIONER_SWEEP_STALE_SECONDS", ge=5)
    max_retries: int = Field(8, alias="PROVISIONER_MAX_RETRIES", ge=0, le=100)
    min_backoff_ms: int = Field(1_000, alias="PROVISIONER_MIN_BACKOFF_MS", ge=10)
    max_backoff_ms: int = Field(300_000, alias="PROVISIONER_MAX_BACKOFF_MS", ge=100)
    auth_retry_delay_ms: int = Field(300_000, alias="PROVISIONER_AUTH_RETRY_DELAY_MS", ge=1_000)
    metrics_host: str = Field("127.0.0.1", alias="PROVISIONER_METRICS_HOST")
    metrics_port: int = Field(9464, alias="PROVISIONER_METRICS_PORT", ge=0, le=65535)
    # --- HTTP API (``provisioner api``) -----------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", alias="PROVISIONER_API_HOST")
    api_port: int = Field(8080, alias="PROVISIONER_API_PORT", ge=0, le=65535)
    api_secrets: SecretStr | None = Field(None, alias="PROVISIONER_API_SECRETS")
    """Standard Webhooks secrets (``whsec_<base64>``, comma-separated) that sign every request to the API."""
    api_metrics_host: str = Field("127.0.0.1", alias="PROVISIONER_API_METRICS_HOST")
    api_metrics_port: int = Field(9465, alias="PROVISIONER_API_METRICS_PORT", ge=0, le=65535)
    intake_private_keys: SecretStr | None = Field(None, alias="PROVISIONER_INTAKE_PRIVATE_KEYS")
    """The worker's X25519 keys that open KYC documents sealed at the edge (``worker.sealing``)."""
    event_signing_keys: SecretStr | None = Field(None, alias="PROVISIONER_EVENT_SIGNING_KEYS")
    """HMAC keys that sign every event message (the API, ``provisioner publish``) and that the worker checks before
    it takes one (``worker.event_proof``): never stored in Redis. The first signs, any listed one verifies."""
    intake_public_key: str | None = Field(None, alias="PROVISIONER_INTAKE_PUBLIC_KEY")
    """The key the edge seals KYC documents to; in the worker, default: the first private key's public half."""

    log_format: str = Field("auto", alias="PROVISIONER_LOG_FORMAT", pattern="^(auto|json|console)$")
    log_level: str = Field("INFO", alias="PROVISIONER_LOG_LEVEL", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: Any) -> Any:
        if isinstance(value, str):
            items = tuple(c.strip().upper() for c in value.split(",") if c.strip())
            if not items or not all(c.isalnum() and len(c) <= 16 for c in items):
                raise ValueError("expected a comma-separated list of currency codes")
            return items
        return value

    @field_validator("api_secrets")
    @classmethod
    def _webhook_secrets(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not webhook_secrets_ok(value.get_secret_value()):
            raise ValueError("expected comma-separated whsec_<base64 of 24 to 64 bytes> secrets")  # never echoed
        return value

    @field_validator("name_secrets")
    @classmethod
    def _name_secret_versions(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_name_secret_versions(value.get_secret_value())  # raises ValueError, never echoing a secret
        return value

    @field_validator("http_proxy")
    @classmethod
    def _proxy_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _is_plain_proxy_url(value.get_secret_value()):
            # never echo the value: it may hold the proxy's password
            raise ValueError(
                "expected http://[user:password@]host[:port] or https://…, nothing after the port "
                "(percent-encode # ? / @ : in the user name or password)"
            )
        return value

    @field_validator("funding_cap_per_customer", "funding_cap_per_day", mode="before")
    @classmethod
    def _parse_caps(cls, value: Any, info: ValidationInfo) -> Any:
        """The caps set (``CURRENCY=AMOUNT,...``) over the defaults of the configured currencies: setting one
        currency's cap never removes the others' (a currency with no cap would have every line refused)."""
        if isinstance(value, str):
            value = _parse_amount_map(value, name=_alias_of(info.field_name or ""))
        if not isinstance(value, Mapping):
            return value
        defaults = _DEFAULT_CAPS[info.field_name or ""]
        currencies = info.data.get("currencies", tuple(defaults))
        return {**{c: defaults[c] for c in currencies if c in defaults}, **value}

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, profile: Profile = Profile.WORKER
    ) -> tuple[Settings, list[str]]:
        """Read the settings once from ``environ`` (default ``os.environ``) for the process ``profile``.

        Returns the settings and the names of the variables that fell back to a development default (the
        caller warns about them). Raises ``SettingsError`` naming each malformed variable, or, in production
        mode, each missing secret the profile requires (and, for ``Profile.WORKER``, an unset
        ``PROVISIONER_PERSONAL_DATA_RETENTION_DAYS``), then each weak one and each clear-text URL. ``Profile.API``
        never reads ``API_WITHHELD``.
        """
        env = dict(os.environ if environ is None else environ)
        if profile is Profile.API:
            env = {k: v for k, v in env.items() if k not in API_WITHHELD}
        profile_defaults = DEV_DEFAULT_API_SETTINGS if profile is Profile.API else DEV_DEFAULT_SECRETS
        try:
            settings = cls.model_validate({k: v for k, v in env.items() if v != ""})
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else "?"
                problems.append(f"{_alias_of(field)}: {err['msg']}")
            raise SettingsError("invalid settings: " + "; ".join(problems)) from None
        defaults = {name: value for name, value in profile_defaults.items() if not env.get(name)}
        if profile is Profile.WORKER:
            if not env.get("PROVISIONER_DELIVERY_JWK") and not env.get("PROVISIONER_DELIVERY_KEYS"):
                defaults["PROVISIONER_DELIVERY_JWK"] = DEV_DELIVERY_JWK
            if env.get("PROVISIONER_WEBHOOK_URL") and not env.get("PROVISIONER_WEBHOOK_SECRET"):
                defaults["PROVISIONER_WEBHOOK_SECRET"] = DEV_WEBHOOK_SECRET
        missing = list(defaults)
        if settings.environment is Environment.PRODUCTION:
            unset = []
            if missing:
                named = [
                    "PROVISIONER_DELIVERY_JWK (the upstream's public key)" if m.endswith("_JWK") else m for m in missing
                ]
                unset.append("production mode needs these secrets, which are unset: " + ", ".join(named))
            if profile is Profile.WORKER and settings.personal_data_retention_days is None:
                unset.append(RETENTION_UNSET)
            if unset:
                raise SettingsError("; ".join(unset))
        if missing:
            settings = cls.model_validate({**{k: v for k, v in env.items() if v != ""}, **defaults})
        settings._check_consistency()
        if settings.environment is Environment.PRODUCTION:
            weak = secret_problems(
                settings.plain_secrets(),
                dev_values=published_defaults(
                    ("PROVISIONER_DELIVERY_JWK", DEV_DELIVERY_JWK), ("PROVISIONER_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)
                ),
            )
            if weak:
                raise SettingsError("production mode refuses these secrets: " + "; ".join(weak))
        return settings, missing

    def plain_secrets(self) -> dict[str, str]:
        """Every secret (and public key that stands for one) that is set, by variable name, in plain text: what
        production judges (``worker.secret_strength``). The proxy URL is not among them."""
        values: dict[str, str] = {}
        for field, info in type(self).model_fields.items():
            value = getattr(self, field)
            if field == "http_proxy" or value is None or info.alias is None:
                continue
            if isinstance(value, SecretStr):
                values[info.alias] = value.get_secret_value()
            elif field in ("delivery_jwk", "intake_public_key"):
                values[info.alias] = value
        return values

    def _check_consistency(self) -> None:
        problems = []
        unknown_caps = sorted(
            set(self.funding_cap_per_customer) - set(self.currencies)
            | set(self.funding_cap_per_day) - set(self.currencies)
        )
        if unknown_caps:
            problems.append(
                f"PROVISIONER_FUNDING_CAP_*: caps for currencies not in PROVISIONER_CURRENCIES: "
                f"{', '.join(unknown_caps)}"
            )
        for name, caps in (
            ("PROVISIONER_FUNDING_CAP_PER_CUSTOMER", self.funding_cap_per_customer),
            ("PROVISIONER_FUNDING_CAP_PER_DAY", self.funding_cap_per_day),
        ):
            uncapped = [c for c in self.currencies if c not in caps]
            if uncapped:  # every line of these would be refused: say so now, not line by line
                problems.append(f"{name}: no cap for {', '.join(uncapped)} (a currency of PROVISIONER_CURRENCIES)")
        if self.min_backoff_ms > self.max_backoff_ms:
            problems.append("PROVISIONER_MIN_BACKOFF_MS: must not exceed PROVISIONER_MAX_BACKOFF_MS")
        if self.webhook_min_backoff_ms > self.webhook_max_backoff_ms:
            problems.append("PROVISIONER_WEBHOOK_MIN_BACKOFF_MS: must not exceed PROVISIONER_WEBHOOK_MAX_BACKOFF_MS")
        problems += self._webhook_problems()
        production = self.environment is Environment.PRODUCTION
        problems += base_url_problems("KUCOIN_BROKER_BASE_URL", self.broker_base_url, production=production)
        problems += base_url_problems("KUCOIN_SPOT_BASE_URL", self.spot_base_url, production=production)
        problems += redis_url_problems(
            self.redis_url, production=production, allow_plaintext=self.allow_plaintext_redis
        )
        if self.lock_ttl_ms / 1000 < self.request_bound_s + 3:
            through = ", through KUCOIN_HTTP_PROXY" if self.http_proxy is not None else ""
            problems.append(
                f"PROVISIONER_LOCK_TTL_MS: must exceed the longest request ({self.request_bound_s:g} s of "
                f"KUCOIN_HTTP_* time-outs{through}) by at least 3 s, so that a customer's lock outlives its writes"
            )
        for name, caps in (
            ("PROVISIONER_FUNDING_CAP_PER_CUSTOMER", self.funding_cap_per_customer),
            ("PROVISIONER_FUNDING_CAP_PER_DAY", self.funding_cap_per_day),
        ):
            too_big = [c for c, v in caps.items() if v >= Decimal(90_000_000)]
            if too_big:
                problems.append(
                    f"{name}: caps must stay below 90,000,000 per currency (the ledger counts 10^-8 "
                    f"units exactly only below 2^53): {', '.join(too_big)}"
                )
        from worker.crypto import CryptoError, Keyring  # the keyrings' format is the crypto module's to judge

        for field, alias in (
            ("encryption_keys", "PROVISIONER_ENCRYPTION_KEYS"),
            ("delivery_keys", "PROVISIONER_DELIVERY_KEYS"),
        ):
            value = getattr(self, field)
            if value is not None:
                try:
                    Keyring.parse(value.get_secret_value(), name=alias)
                except CryptoError as exc:
                    problems.append(str(exc))
        if self.event_signing_keys is not None:
            from worker.event_proof import EventProofs

            try:
                EventProofs.parse(self.event_signing_keys.get_secret_value(), name="PROVISIONER_EVENT_SIGNING_KEYS")
            except CryptoError as exc:
                problems.append(str(exc))
        from worker.sealing import intake_key_problems

        problems += intake_key_problems(
            self.intake_private_keys.get_secret_value() if self.intake_private_keys is not None else None,
            self.intake_public_key,
        )
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))

    def _webhook_problems(self) -> list[str]:
        """The delivery key and the webhook settings, judged by the modules that use them."""
        from worker.delivery import DeliveryKeyError, RecipientKey
        from worker.webhooks.signing import Signer, WebhookSecretError

        problems = []
        if self.delivery_jwk is not None:
            try:
                RecipientKey.parse(self.delivery_jwk)
            except DeliveryKeyError as exc:
                problems.append(str(exc))
        if self.webhook_secret is not None:
            try:
                Signer.parse(self.webhook_secret.get_secret_value())
            except WebhookSecretError as exc:
                problems.append(str(exc))
        if self.webhook_url is not None and self.environment is Environment.PRODUCTION:
            host = urlsplit(self.webhook_url).hostname or ""
            if not self.webhook_url.startswith("https://") and host not in ("127.0.0.1", "localhost", "::1"):
                problems.append("PROVISIONER_WEBHOOK_URL: production sends webhooks over https only (or to loopback)")
        return problems

    @property
    def request_bound_s(self) -> float:
        """The longest one exchange request can take, from the ``KUCOIN_HTTP_*`` time-outs: waiting for a pooled
        connection, the TCP connect and the TLS handshake (httpcore gives each the connect time-out), sending,
        reading. Through a proxy, also the tunnel: a handshake with an https proxy and the CONNECT exchange."""
        connects, exchanges = 2, 1
        if self.http_proxy is not None:
            connects, exchanges = 3, 2
        return (
            self.http_pool_timeout
            + connects * self.http_connect_timeout
            + exchanges * (self.http_write_timeout + self.http_read_timeout)
        )

    def log_secrets(self) -> list[str]:
        """Our own credentials, to be redacted wherever they would appear in a log line: the management and
        trading keys' secrets and passphrases, the broker key, the proxy's password, the webhook secrets and the
        event-signing keys."""
        values = [
            self.secret(n)
            for n in ("api_secret", "api_passphrase", "broker_key", "trading_api_secret", "trading_api_passphrase")
        ]
        if self.http_proxy is not None:
            password = urlsplit(self.http_proxy.get_secret_value()).password
            if password:
                values += [password, unquote(password)]
        if self.webhook_secret is not None:
            values += [s.strip() for s in self.webhook_secret.get_secret_value().split(",") if s.strip()]
        if self.event_signing_keys is not None:
            spec = self.event_signing_keys.get_secret_value()
            values += [p.partition("=")[2].strip() for p in spec.split(",") if p.partition("=")[2].strip()]
        return values

    def name_secret_versions(self) -> dict[int, str]:
        """``PROVISIONER_NAME_SECRETS`` as version → secret (empty when unset)."""
        if self.name_secrets is None:
            return {}
        return parse_name_secret_versions(self.name_secrets.get_secret_value())

    def secret(self, name: str) -> str:
        """The plain value of a secret field (e.g. ``"api_secret"``). Raises ``SettingsError`` if unset."""
        value = getattr(self, name)
        if not isinstance(value, SecretStr):
            raise SettingsError(f"{_alias_of(name)} is not set")
        return value.get_secret_value()

    def management_credentials(self) -> KucoinCredentials:
        """The ND-broker management key plus the broker's partner credentials."""
        return KucoinCredentials(
            api_key=self.secret("api_key"),
            api_secret=self.secret("api_secret"),
            api_passphrase=self.secret("api_passphrase"),
            partner=self.secret("broker_partner"),
            broker_key=self.secret("broker_key"),
            broker_name=self.secret("broker_name"),
        )

    def trading_credentials(self) -> KucoinCredentials:
        """The Special Account's trading key (asset reads). It carries no broker headers."""
        return KucoinCredentials(
            api_key=self.secret("trading_api_key"),
            api_secret=self.secret("trading_api_secret"),
            api_passphrase=self.secret("trading_api_passphrase"),
        )


_ENV_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def ignored_proxy_variables(environ: Mapping[str, str], settings: Settings) -> list[str]:
    """The environment's proxy variables that are set while ``KUCOIN_HTTP_PROXY`` is not: the exchange client
    does not read them (it did through ``httpx.Client`` before), so a deployment relying on them goes direct."""
    if settings.http_proxy is not None:
        return []
    return [name for name in _ENV_PROXY_VARIABLES if environ.get(name)]


def _is_plain_proxy_url(value: str) -> bool:
    """``http(s)://[user[:password]@]host[:port][/]``, nothing else, no whitespace or control characters."""
    if any(c.isspace() or not c.isprintable() for c in value):
        return False
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0  # .port raises ValueError for a malformed port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and port_ok
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
        and "#" not in value
        and "?" not in value
    )


def parse_name_secret_versions(spec: str) -> dict[int, str]:
    """Parse ``"2=<secret>,3=<secret>"``: version numbers 2 to 999, each once, secrets non-empty without whitespace
    or commas. Raises ``ValueError`` naming the version at fault (never a secret)."""
    versions: dict[int, str] = {}
    for position, part in enumerate((p for p in spec.split(",") if p.strip()), start=1):
        number, sep, secret = part.strip().partition("=")
        if not sep or not number.isdigit() or not 2 <= int(number) <= 999:
            raise ValueError(f"entry {position}: expected VERSION=SECRET with a version from 2 to 999")
        if int(number) in versions:
            raise ValueError(f"version {int(number)} is listed twice")
        if not secret or any(c.isspace() or not c.isprintable() for c in secret):
            raise ValueError(f"version {int(number)}: the secret is empty or holds whitespace")
        versions[int(number)] = secret
    if not versions:
        raise ValueError("expected VERSION=SECRET entries")
    return versions


def _alias_of(field_name: str) -> str:
    info = Settings.model_fields.get(field_name)
    return info.alias if info is not None and info.alias else field_name


@dataclass(frozen=True, repr=False)
class KucoinCredentials:
    """One KuCoin API key and, for the management key, the broker's partner credentials.

    ``repr`` shows only the public key id, so credentials never reach a log or a traceback by accident.
    """

    api_key: str
    api_secret: str
    api_passphrase: str
    partner: str | None = None
    broker_key: str | None = None
    broker_name: str | None = None

    def __repr__(self) -> str:
        return f"KucoinCredentials(api_key={self.api_key!r}, partner={self.partner!r})"

    @property
    def is_broker(self) -> bool:
        return bool(self.partner and self.broker_key and self.broker_name)
