"""Funding cap settings: a partial setting changes only the currencies it names, and a configured currency with no
cap is refused at start-up (never discovered line by line as "no cap configured")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from worker.settings import Settings, SettingsError


def test_a_one_currency_cap_keeps_the_defaults_of_the_others() -> None:
    """The example of env.example (USDT only) changes USDT's cap and leaves every other currency's default."""
    settings, _ = Settings.from_env({"PROVISIONER_FUNDING_CAP_PER_CUSTOMER": "USDT=10000"})
    caps = settings.funding_cap_per_customer
    assert caps["USDT"] == Decimal("10000")
    assert caps["BTC"] == Decimal("0.5") and caps["USDC"] == Decimal("10000")
    assert set(caps) == set(settings.currencies)


def test_a_one_currency_daily_cap_keeps_the_defaults_of_the_others() -> None:
    """The same for the Special Account's daily cap."""
    settings, _ = Settings.from_env({"PROVISIONER_FUNDING_CAP_PER_DAY": "BTC=7"})
    assert settings.funding_cap_per_day["BTC"] == Decimal("7")
    assert settings.funding_cap_per_day["USDT"] == Decimal("1000000")


def test_fewer_currencies_take_only_their_defaults() -> None:
    """With fewer currencies configured, caps set for them are enough: no default of an unconfigured one is added."""
    settings, _ = Settings.from_env(
        {"PROVISIONER_CURRENCIES": "USDT,BTC", "PROVISIONER_FUNDING_CAP_PER_CUSTOMER": "USDT=5"}
    )
    assert settings.funding_cap_per_customer == {"USDT": Decimal("5"), "BTC": Decimal("0.5")}


def test_fewer_currencies_with_the_caps_unset_start() -> None:
    """Fewer currencies and no cap setting: the defaults of the configured currencies apply."""
    settings, _ = Settings.from_env({"PROVISIONER_CURRENCIES": "USDT,ETH"})
    assert set(settings.funding_cap_per_customer) == {"USDT", "ETH"}
    assert set(settings.funding_cap_per_day) == {"USDT", "ETH"}


def test_a_currency_with_no_cap_anywhere_is_refused_at_start_up() -> None:
    """A configured currency with no default cap and none set: start-up fails naming the variable and currency."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PROVISIONER_CURRENCIES": "USDT,SOL"})
    message = str(caught.value)
    assert "PROVISIONER_FUNDING_CAP_PER_CUSTOMER" in message and "PROVISIONER_FUNDING_CAP_PER_DAY" in message
    assert "no cap for SOL" in message


def test_a_currency_with_its_caps_set_starts() -> None:
    """Setting both caps of a currency without a default is enough."""
    settings, _ = Settings.from_env(
        {
            "PROVISIONER_CURRENCIES": "USDT,SOL",
            "PROVISIONER_FUNDING_CAP_PER_CUSTOMER": "SOL=10",
            "PROVISIONER_FUNDING_CAP_PER_DAY": "SOL=1000",
        }
    )
    assert settings.funding_cap_per_customer == {"USDT": Decimal("10000"), "SOL": Decimal("10")}


def test_a_cap_for_an_unconfigured_currency_is_still_refused() -> None:
    """A cap named for a currency not in PROVISIONER_CURRENCIES is a typo: refused, naming it."""
    with pytest.raises(SettingsError, match="caps for currencies not in PROVISIONER_CURRENCIES: DOGE"):
        Settings.from_env({"PROVISIONER_FUNDING_CAP_PER_CUSTOMER": "DOGE=1"})
