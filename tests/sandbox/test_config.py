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
