"""Configuration values: credentials from the environment, JSON merging and validation."""

from __future__ import annotations

import pytest

from sandbox import Exchange, FaultConfig, SandboxConfig, SandboxCredentials
from worker.settings import DEV_DEFAULT_SECRETS


def test_credentials_fall_back_to_the_worker_development_defaults() -> None:
    """Unset or empty KUCOIN_* variables use worker.settings.DEV_DEFAULT_SECRETS and are reported."""
    creds = SandboxCredentials.from_env({"KUCOIN_API_KEY": "mk", "KUCOIN_API_SECRET": ""})
    assert creds.api_key == "mk"
    assert creds.api_secret == DEV_DEFAULT_SECRETS["KUCOIN_API_SECRET"]
    assert creds.trading_api_key == DEV_DEFAULT_SECRETS["KUCOIN_TRADING_API_KEY"]
    assert creds.partner == DEV_DEFAULT_SECRETS["KUCOIN_BROKER_PARTNER"]
    assert "KUCOIN_API_KEY" not in creds.defaulted and "KUCOIN_API_SECRET" in creds.defaulted


def test_credentials_read_every_kucoin_variable() -> None:
    """All nine KUCOIN_* names map onto the management, partner and trading credentials."""
    env = {name: f"v-{name}" for name in DEV_DEFAULT_SECRETS if name.startswith("KUCOIN_")}
    creds = SandboxCredentials.from_env(env)
    assert (creds.api_key, creds.api_secret, creds.api_passphrase) == (
        "v-KUCOIN_API_KEY", "v-KUCOIN_API_SECRET", "v-KUCOIN_API_PASSPHRASE",
    )  # fmt: skip
    assert (creds.partner, creds.broker_key, creds.broker_name) == (
        "v-KUCOIN_BROKER_PARTNER", "v-KUCOIN_BROKER_KEY", "v-KUCOIN_BROKER_NAME",
    )  # fmt: skip
    assert creds.trading_api_passphrase == "v-KUCOIN_TRADING_API_PASSPHRASE"
    assert creds.defaulted == ()


def test_credentials_repr_hides_secrets() -> None:
    """repr shows key ids only."""
    text = repr(SandboxCredentials.from_env({}))
    assert "secret" not in text.split("key=")[-1] and "passphrase" not in text


def test_merge_patches_switches_and_faults_per_endpoint() -> None:
    """A JSON patch merges into switches, faults and faults.per_endpoint key by key; null removes an entry."""
    config = SandboxConfig().merged({"faults": {"rate_drop": 0.1, "per_endpoint": {"transfer": {"5xx": 0.5}}}})
    config = config.merged({"max_account_size": 3, "faults": {"per_endpoint": {"transfer": {"drop": 0.2}}}})
    assert config.max_account_size == 3 and config.faults.rate_drop == 0.1
    assert config.faults.rates_for("transfer") == {"5xx": 0.5, "drop": 0.2, "429": 0.0, "slow": 0.0}
    assert config.merged({"faults": {"per_endpoint": {"transfer": None}}}).faults.per_endpoint == {}
    assert SandboxConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"nonsense": 1}, "unknown setting"),
        ({"seed": 7}, "only be set when the exchange is created"),
        ({"duplicate_client_oid": "maybe"}, "duplicate_client_oid"),
        ({"max_keys_per_subaccount": "5"}, "must be an integer"),
        ({"enforce_name_rules": 1}, "true or false"),
        ({"faults": {"rate_5xx": 0.7, "rate_drop": 0.7}}, "add up to more than 1"),
        ({"faults": {"per_endpoint": {"transfer": {"boom": 0.1}}}}, "unknown fault kind"),
        ({"business_error_status": 500}, "business_error_status"),
        ({"ledger_context": "order"}, "ledger_context must be one of order_id, client_oid, none"),
        ({"ledger_lag_ms": -1}, "ledger_lag_ms must be >= 0"),
        ({"ledger_max_range_ms": 0}, "ledger_max_range_ms must be > 0"),
        ({"listing_lag_ms": -5}, "listing_lag_ms must be >= 0"),
        ({"transfer_failure_share": 1.1}, "transfer_failure_share"),
        ({"activity": 3}, "activity must be an object"),
    ],
)
def test_merge_rejects_bad_values(patch: dict[str, object], message: str) -> None:
    """Bad patches raise ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        SandboxConfig().merged(patch)


def test_unknown_endpoint_names_in_fault_rates_are_refused() -> None:
    """faults.per_endpoint must name real endpoints (the SDK method names)."""
    with pytest.raises(ValueError, match="unknown endpoint names"):
        Exchange().update_config({"faults": {"per_endpoint": {"transfers": {"5xx": 0.1}}}})


def test_fault_config_validates_rates() -> None:
    """Rates outside [0, 1] are refused at construction."""
    with pytest.raises(ValueError, match="rate_slow"):
        FaultConfig(rate_slow=1.5)


def test_new_switches_have_their_documented_defaults_and_merge() -> None:
    """Ledger, listing, failure and activity switches: defaults, merging (activity key by key) and round trip."""
    config = SandboxConfig()
    assert (config.ledger_context, config.ledger_lag_ms, config.ledger_max_range_ms) == ("order_id", 0, 86_400_000)
    assert (config.listing_lag_ms, config.transfer_failure_share) == (0, 0.0)
    activity = config.activity
    assert (activity.rate_per_s, activity.deposit_share, activity.max_trade_fraction) == (0.0, 0.3, 0.5)
    assert dict(activity.deposit_max) == {"USDT": "1000", "USDC": "1000", "BTC": "0.02", "ETH": "0.5", "KCS": "100"}
    merged = config.merged({"activity": {"rate_per_s": 2, "deposit_max": {"BTC": None, "USDT": "5"}}})
    assert merged.activity.rate_per_s == 2.0 and merged.activity.deposit_share == 0.3
    assert dict(merged.activity.deposit_max) == {"USDT": "5", "USDC": "1000", "ETH": "0.5", "KCS": "100"}
    assert SandboxConfig.from_dict(merged.to_dict()) == merged
    assert merged.to_dict()["activity"]["deposit_max"]["USDT"] == "5"
