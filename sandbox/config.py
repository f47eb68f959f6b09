"""Configuration values of the simulator: switches, quotas, fault rates and the credentials it accepts.

Everything here is a frozen dataclass built once and replaced (never mutated) when ``Exchange.update_config``
applies a JSON patch. Each field's comment says which KuCoin behaviour it controls and whether that behaviour is
documented (``docs/kucoin-api.md`` section) or our own choice. Nothing reads the environment at import time;
``SandboxCredentials.from_env`` reads a mapping handed to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from worker.settings import DEV_DEFAULT_SECRETS

__all__ = [
    "FAULT_KINDS",
    "LEDGER_CONTEXTS",
    "ActivityConfig",
    "FaultConfig",
    "SandboxConfig",
    "SandboxCredentials",
]

FAULT_KINDS = ("5xx", "drop", "429", "slow")
"""Fault kinds decided per request (at most one per request). Latency is separate: it applies to every request."""

WALLETS = ("MAIN", "TRADE")
"""The two wallets of every account that the ND transfer endpoint can move funds between (docs/kucoin-api.md §5)."""
LEDGER_CONTEXTS = ("order_id", "client_oid", "none")
"""Values of the switch ``ledger_context``: what the ``context`` of a BROKER_TRANSFER ledger entry carries."""

_DEFAULT_PRECISION = MappingProxyType({"USDT": 8, "USDC": 8, "BTC": 8, "ETH": 8, "KCS": 8})
_DEFAULT_BALANCES = MappingProxyType(
    {
        "MAIN": MappingProxyType(
            {"USDT": "100000000", "USDC": "100000000", "BTC": "10000", "ETH": "100000", "KCS": "10000000"}
        ),
        "TRADE": MappingProxyType({"USDT": "1000000", "USDC": "1000000", "BTC": "100", "ETH": "1000"}),
    }
)
_DEFAULT_DEPOSIT_MAX = MappingProxyType({"USDT": "1000", "USDC": "1000", "BTC": "0.02", "ETH": "0.5", "KCS": "100"})
_CONSTRUCTION_ONLY = frozenset({"seed", "broker_uid", "initial_balances"})


def _freeze(value: Any) -> Any:
    """Deep-freeze JSON-ish values: dicts become read-only mappings, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """The JSON form of a frozen value (read-only mappings to dicts, tuples and frozensets to lists)."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class FaultConfig:
    """Seeded fault injection (all rates are probabilities per request; at most one fault kind per request).

    Kinds: ``5xx`` (HTTP 500/503 before anything is committed), ``drop`` (the change is committed, then the
    response is lost), ``429`` (starts a burst: every request of that caller's pool gets 429 for
    ``burst_429_ms`` without consuming quota), ``slow`` (committed, then answered after ``slow_ms``). Latency
    (``latency_ms`` plus uniform jitter) delays every /api request before processing. Faults never touch
    /sandbox paths.
    """

    latency_ms: int = 0
    latency_jitter_ms: int = 0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    rate_429: float = 0.0
    rate_slow: float = 0.0
    slow_ms: int = 15_000
    """Delay of a slow response; the default exceeds the worker's default read time-out (10 s)."""
    burst_429_ms: int = 1_000
    share_503: float = 0.5
    """Fraction of 5xx faults answered 503 (maintenance) instead of 500."""
    drop_timeout_share: float = 0.5
    """In-process transport only: fraction of drops raised as ``httpx.ReadTimeout`` (else RemoteProtocolError)."""
    inprocess_max_sleep_ms: int | None = 5
    """In-process transport only: cap on real sleeps for slow faults (None = sleep for real)."""
    per_endpoint: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    """Endpoint name (e.g. ``"transfer"``) -> {kind: rate}; overrides the global rate of that kind there."""

    def __post_init__(self) -> None:
        for name in ("latency_ms", "latency_jitter_ms", "slow_ms", "burst_429_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"faults.{name} must be >= 0")
        for name in ("rate_5xx", "rate_drop", "rate_429", "rate_slow", "share_503", "drop_timeout_share"):
            _check_rate(f"faults.{name}", getattr(self, name))
        if self.inprocess_max_sleep_ms is not None and self.inprocess_max_sleep_ms < 0:
            raise ValueError("faults.inprocess_max_sleep_ms must be >= 0 or null")
        object.__setattr__(self, "per_endpoint", _freeze(self.per_endpoint))
        for endpoint, rates in self.per_endpoint.items():
            for kind, rate in rates.items():
                if kind not in FAULT_KINDS:
                    raise ValueError(f"faults.per_endpoint.{endpoint}: unknown fault kind {kind!r}")
                _check_rate(f"faults.per_endpoint.{endpoint}.{kind}", rate)
        for endpoint in ("*", *self.per_endpoint):
            if sum(self.rates_for(endpoint).values()) > 1.0 + 1e-9:
                raise ValueError(f"fault rates for {endpoint!r} add up to more than 1")

    def rates_for(self, endpoint: str) -> dict[str, float]:
        """Effective rate per kind for one endpoint name (global rates, overridden per endpoint)."""
        rates = {"5xx": self.rate_5xx, "drop": self.rate_drop, "429": self.rate_429, "slow": self.rate_slow}
        rates.update(self.per_endpoint.get(endpoint, {}))
        return rates


@dataclass(frozen=True)
class ActivityConfig:
    """Seeded customer activity on live sub-accounts (not KuCoin's: it stands for what customers do with their
    own keys and deposit addresses, which no ND endpoint can prevent).

    Events form a Poisson process of ``rate_per_s`` events per second per sub-account holding at least one live
    key (0 = off). A share ``deposit_share`` of them are deposits (a random amount up to ``deposit_max`` of a
    random currency of ``deposit_max``, into MAIN); the rest are trades in the TRADE wallet (sell a random
    fraction, at most ``max_trade_fraction``, of one held currency for another at the invented prices of
    ``sandbox.endpoints.spot``). ``deposit_max`` amounts are decimal strings.
    """

    rate_per_s: float = 0.0
    deposit_share: float = 0.3
    max_trade_fraction: float = 0.5
    deposit_max: Mapping[str, str] = field(default_factory=lambda: _DEFAULT_DEPOSIT_MAX)

    def __post_init__(self) -> None:
        object.__setattr__(self, "deposit_max", _freeze(self.deposit_max))
        if not self.rate_per_s >= 0.0 or self.rate_per_s == float("inf"):
            raise ValueError("activity.rate_per_s must be a finite number >= 0")
        _check_rate("activity.deposit_share", self.deposit_share)
        _check_rate("activity.max_trade_fraction", self.max_trade_fraction)
        for currency, amount in self.deposit_max.items():
            if not isinstance(amount, str):
                raise ValueError(f"activity.deposit_max.{currency} must be a decimal string")
            try:
                value = Decimal(amount)
            except InvalidOperation:
                raise ValueError(f"activity.deposit_max.{currency} must be a decimal string") from None
            if not value.is_finite() or value <= 0:
                raise ValueError(f"activity.deposit_max.{currency} must be greater than 0")


@dataclass(frozen=True)
class SandboxConfig:
    """Every switch of the simulator. Defaults follow KuCoin's documentation where it says something and are
    documented choices (docs/sandbox.md) where it does not. ``seed``, ``broker_uid`` and ``initial_balances``
    are read at construction only; everything else can be patched at runtime."""

    seed: int = 0
    broker_uid: str = "165111215"
    """UID of the broker's Special Account (owner of the management and trading keys); docs/kucoin-api.md §6.13
    example."""
    initial_balances: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _DEFAULT_BALANCES)
    currency_precision: Mapping[str, int] = field(default_factory=lambda: _DEFAULT_PRECISION)
    """Known currencies and the maximum number of decimals of a transfer amount."""

    # --- rate limits (docs/kucoin-api.md §4) ---
    broker_quota: int = 2000
    management_quota: int = 2000
    spot_quota: int = 4000
    window_ms: int = 30_000

    # --- undocumented behaviour, one switch each ---
    duplicate_client_oid: str = "dedupe"
    taken_name_share: float = 0.0
    taken_names: frozenset[str] = frozenset()
    enforce_name_rules: bool = True
    max_keys_per_subaccount: int = 5
    broker_info_requires_dates: bool = False
    subaccount_order: str = "asc"
    kyc_review_ms: int = 2000
    kyc_reject_share: float = 0.0
    transfer_processing_ms: int = 0
    transfer_credit: str = "at_once"
    """When a transfer's money reaches its target (assumed; KuCoin does not say): ``at_once`` (with the debit, when
    it is accepted) or ``on_completion`` (the source is debited at once, the target credited when the transfer
    leaves PROCESSING, ``transfer_processing_ms`` later)."""
    max_account_size: int | None = None
    broker_level: int = 0
    require_partner_headers: bool = False
    business_error_status: int = 200
    enforce_ip_whitelist: bool = False
    timestamp_tolerance_ms: int = 5000
    """Documented (docs/kucoin-api.md §2.4): |server time - KC-API-TIMESTAMP| must be < 5 s."""
    transfer_failure_share: float = 0.0
    """Seeded share (per orderId) of accepted transfers that move nothing and end FAILURE (assumed, §6.13)."""
    listing_lag_ms: int = 0
    """A new sub-account (key) appears in Get SubAccount (API) only this long after it was created (assumed)."""

    # --- Get Account Ledgers (spot), docs/kucoin-api.md §6.13a and §8.3 ---
    ledger_context: str = "order_id"
    """``context`` of a BROKER_TRANSFER entry: ``order_id``, ``client_oid`` (orderId and clientOid) or ``none``."""
    ledger_lag_ms: int = 0
    """A ledger entry becomes visible this long after it was created (assumed)."""
    ledger_max_range_ms: int = 86_400_000
    """Largest ``endAt - startAt`` the ledger accepts (400100 beyond; our reading of KuCoin's 24 h window)."""

    activity: ActivityConfig = field(default_factory=ActivityConfig)

    # --- fixtures for the read-only asset endpoints ---
    deposits: tuple[Mapping[str, Any], ...] = ()
    withdrawals: tuple[Mapping[str, Any], ...] = ()

    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "initial_balances", _freeze(self.initial_balances))
        object.__setattr__(self, "currency_precision", _freeze(self.currency_precision))
        object.__setattr__(self, "taken_names", frozenset(self.taken_names))
        object.__setattr__(self, "deposits", _freeze(tuple(self.deposits)))
        object.__setattr__(self, "withdrawals", _freeze(tuple(self.withdrawals)))
        if not (self.broker_uid.isdigit() and len(self.broker_uid) == 9):
            raise ValueError("broker_uid must be a 9-digit string")
        if self.duplicate_client_oid not in ("dedupe", "reject", "accept"):
            raise ValueError("duplicate_client_oid must be dedupe, reject or accept")
        if self.transfer_credit not in ("at_once", "on_completion"):
            raise ValueError("transfer_credit must be at_once or on_completion")
        if self.subaccount_order not in ("asc", "desc"):
            raise ValueError("subaccount_order must be asc or desc")
        if self.business_error_status not in (200, 400):
            raise ValueError("business_error_status must be 200 or 400")
        if self.ledger_context not in LEDGER_CONTEXTS:
            raise ValueError(f"ledger_context must be one of {', '.join(LEDGER_CONTEXTS)}")
        _check_rate("taken_name_share", self.taken_name_share)
        _check_rate("kyc_reject_share", self.kyc_reject_share)
        _check_rate("transfer_failure_share", self.transfer_failure_share)
        positive = ("broker_quota", "management_quota", "spot_quota", "window_ms", "timestamp_tolerance_ms")
        for name in (*positive, "ledger_max_range_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        not_negative = ("max_keys_per_subaccount", "kyc_review_ms", "transfer_processing_ms", "broker_level")
        for name in (*not_negative, "listing_lag_ms", "ledger_lag_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        unknown_deposits = set(self.activity.deposit_max) - set(self.currency_precision)
        if unknown_deposits:
            raise ValueError(f"activity.deposit_max: unknown currencies {sorted(unknown_deposits)}")
        if self.max_account_size is not None and self.max_account_size < 0:
            raise ValueError("max_account_size must be >= 0 or null")
        for currency, places in self.currency_precision.items():
            if not currency.isalnum() or not 0 <= places <= 18:
                raise ValueError(f"currency_precision: bad entry {currency}={places}")
        for wallet, amounts in self.initial_balances.items():
            if wallet not in WALLETS:
                raise ValueError(f"initial_balances: unknown wallet {wallet!r}")
            unknown = set(amounts) - set(self.currency_precision)
            if unknown:
                raise ValueError(f"initial_balances: unknown currencies {sorted(unknown)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SandboxConfig:
        """Build a config from its JSON form (as ``to_dict`` returns; missing fields keep their defaults; a given
        ``activity.deposit_max`` is taken whole). Raises ``ValueError`` naming a bad field."""
        base = cls(**{k: v for k, v in data.items() if k in _CONSTRUCTION_ONLY})
        config = base.merged({k: v for k, v in data.items() if k not in _CONSTRUCTION_ONLY and k != "activity"})
        if "activity" in data:
            config = dataclasses.replace(config, activity=_activity_from(data["activity"]))
        return config

    def quota(self, pool: str) -> int:
        """Quota per window of a rate-limit pool ("Broker", "Management" or "Spot")."""
        return {"Broker": self.broker_quota, "Management": self.management_quota, "Spot": self.spot_quota}[pool]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (as served by ``GET /sandbox/v1/state`` and ``POST /sandbox/v1/config``)."""
        nested = ("faults", "activity")
        result = {f.name: _thaw(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in nested}
        for name in nested:
            value = getattr(self, name)
            result[name] = {f.name: _thaw(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return result

    def merged(self, patch: Mapping[str, Any]) -> SandboxConfig:
        """A new config with ``patch`` merged in, JSON-merge style: objects (``faults``, ``per_endpoint``,
        ``currency_precision``, ``activity``, ``activity.deposit_max``) merge key by key and a null value removes
        a key; lists replace.

        Raises ``ValueError`` naming the field for unknown fields, construction-only fields, wrong types or
        values out of range.
        """
        changes: dict[str, Any] = {}
        for name, value in patch.items():
            if name == "faults":
                if not isinstance(value, Mapping):
                    raise ValueError("faults must be an object")
                changes["faults"] = _merge_faults(self.faults, value)
                continue
            if name == "activity":
                if not isinstance(value, Mapping):
                    raise ValueError("activity must be an object")
                changes["activity"] = _merge_activity(self.activity, value)
                continue
            if name in _CONSTRUCTION_ONLY:
                if value != _thaw(getattr(self, name)):
                    raise ValueError(f"{name} can only be set when the exchange is created")
                continue
            changes[name] = _coerce(name, value, getattr(self, name, _MISSING), optional=_OPTIONAL.get(name))
        return dataclasses.replace(self, **changes)


_MISSING = object()
_OPTIONAL = {"max_account_size": int, "inprocess_max_sleep_ms": int}


def _coerce(name: str, value: Any, current: Any, *, optional: type | None = None) -> Any:
    """Check ``value`` has the JSON type of the field's current value; convert lists to tuples/frozensets."""
    if current is _MISSING:
        raise ValueError(f"unknown setting {name!r}")
    if value is None and (optional is not None or current is None):
        return None
    expected: type = optional if current is None and optional is not None else type(current)
    if isinstance(current, bool) or expected is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        return value
    if isinstance(current, frozenset):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings")
        return frozenset(value)
    if isinstance(current, tuple):
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise ValueError(f"{name} must be a list of objects")
        return tuple(value)
    if isinstance(current, Mapping):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be an object")
        merged = {**current, **value}
        return {k: v for k, v in merged.items() if v is not None}
    raise ValueError(f"{name} cannot be changed at runtime")


def _merge_faults(current: FaultConfig, patch: Mapping[str, Any]) -> FaultConfig:
    changes: dict[str, Any] = {}
    for name, value in patch.items():
        if name == "per_endpoint":
            if not isinstance(value, Mapping):
                raise ValueError("faults.per_endpoint must be an object")
            merged = {k: dict(v) for k, v in current.per_endpoint.items()}
            for endpoint, rates in value.items():
                if rates is None:
                    merged.pop(endpoint, None)
                elif isinstance(rates, Mapping):
                    merged.setdefault(endpoint, {}).update(rates)
                else:
                    raise ValueError(f"faults.per_endpoint.{endpoint} must be an object or null")
            changes[name] = merged
            continue
        changes[name] = _coerce(f"faults.{name}", value, getattr(current, name, _MISSING), optional=_OPTIONAL.get(name))
    return dataclasses.replace(current, **changes)


def _activity_from(value: Any) -> ActivityConfig:
    """``activity`` from its JSON form: missing fields keep their defaults, a given ``deposit_max`` replaces."""
    if not isinstance(value, Mapping):
        raise ValueError("activity must be an object")
    return _merge_activity(ActivityConfig(deposit_max={}) if "deposit_max" in value else ActivityConfig(), value)


def _merge_activity(current: ActivityConfig, patch: Mapping[str, Any]) -> ActivityConfig:
    changes = {
        name: _coerce(f"activity.{name}", value, getattr(current, name, _MISSING)) for name, value in patch.items()
    }
    return dataclasses.replace(current, **changes)


_CREDENTIAL_FIELDS = {
    "api_key": "KUCOIN_API_KEY",
    "api_secret": "KUCOIN_API_SECRET",
    "api_passphrase": "KUCOIN_API_PASSPHRASE",
    "partner": "KUCOIN_BROKER_PARTNER",
    "broker_key": "KUCOIN_BROKER_KEY",
    "broker_name": "KUCOIN_BROKER_NAME",
    "trading_api_key": "KUCOIN_TRADING_API_KEY",
    "trading_api_secret": "KUCOIN_TRADING_API_SECRET",
    "trading_api_passphrase": "KUCOIN_TRADING_API_PASSPHRASE",
}


@dataclass(frozen=True, repr=False)
class SandboxCredentials:
    """The keys the simulated exchange has issued to the broker.

    ``api_key``/``api_secret``/``api_passphrase`` are the ND-broker management key (ND endpoints);
    ``partner``/``broker_key``/``broker_name`` the partner credentials (partner headers); ``trading_*`` the
    Special Account's trading key (spot reads). ``repr`` shows key ids only, never secrets.
    """

    api_key: str
    api_secret: str
    api_passphrase: str
    partner: str
    broker_key: str
    broker_name: str
    trading_api_key: str
    trading_api_secret: str
    trading_api_passphrase: str
    defaulted: tuple[str, ...] = ()
    """Environment variable names that were unset and fell back to ``DEV_DEFAULT_SECRETS``."""

    def __post_init__(self) -> None:
        if self.api_key == self.trading_api_key:
            raise ValueError("the management key and the trading key must differ")

    def __repr__(self) -> str:
        return f"SandboxCredentials(api_key={self.api_key!r}, trading_api_key={self.trading_api_key!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SandboxCredentials:
        """Read the ``KUCOIN_*`` variables the worker reads; unset or empty ones fall back to the worker's
        development defaults (``worker.settings.DEV_DEFAULT_SECRETS``), so both agree with no configuration."""
        values: dict[str, str] = {}
        defaulted: list[str] = []
        for attr, env_name in _CREDENTIAL_FIELDS.items():
            value = environ.get(env_name, "")
            if not value:
                value = DEV_DEFAULT_SECRETS[env_name]
                defaulted.append(env_name)
            values[attr] = value
        return cls(**values, defaulted=tuple(defaulted))
