"""``provisioner sandbox`` as a real process: prints its URL and switches, serves, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cli.sandbox_cmd import _build_config, sandbox_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.loopback
def test_cli_serves_until_sigterm() -> None:
    """The command applies its options, serves on the printed URL, and exits 0 on SIGTERM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUCOIN_")}
    env["KUCOIN_API_KEY"] = "cli-management-key"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli.sandbox_cmd import sandbox_command; sandbox_command()",
         "--port", "0", "--seed", "3", "--fault-rate", "0.4", "--rate-slow", "0", "--quota", "500",
         "--duplicate-client-oid", "reject", "--business-error-status", "400", "--taken-name", "Taken001"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first, first
        url = first.split()[-1]
        banner = [proc.stdout.readline() for _ in range(3)]
        assert "cli-management-key" in banner[0] and "KUCOIN_API_SECRET" in banner[2]
        config = httpx.get(f"{url}/sandbox/v1/state", timeout=5).json()["config"]
        assert (config["seed"], config["broker_quota"], config["duplicate_client_oid"]) == (3, 500, "reject")
        assert config["business_error_status"] == 400 and config["taken_names"] == ["Taken001"]
        faults = config["faults"]
        assert (faults["rate_5xx"], faults["rate_drop"], faults["rate_429"], faults["rate_slow"]) == (
            0.1,
            0.1,
            0.1,
            0.0,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "sandbox stopped" in output


def test_cli_options_set_the_ledger_listing_failure_and_activity_switches(tmp_path: Path) -> None:
    """The new options reach the config; --activity-deposit-max replaces the defaults; a config file's activity
    is kept where no option overrides it."""
    config_file = tmp_path / "sandbox.json"
    config_file.write_text('{"activity": {"deposit_share": 0.9}}')
    args = [
        "--config-file", str(config_file), "--transfer-failure-share", "0.25", "--listing-lag-ms", "1500",
        "--ledger-context", "client_oid", "--ledger-lag-ms", "700", "--ledger-max-range-ms", "3600000",
        "--activity-rate", "0.5", "--activity-max-trade-fraction", "0.2",
        "--activity-deposit-max", "USDT=25", "--activity-deposit-max", "BTC=0.001",
    ]  # fmt: skip
    config = _build_config(sandbox_command.make_context("sandbox", args).params)
    assert (config.transfer_failure_share, config.listing_lag_ms) == (0.25, 1500)
    assert (config.ledger_context, config.ledger_lag_ms, config.ledger_max_range_ms) == ("client_oid", 700, 3_600_000)
    activity = config.activity
    assert (activity.rate_per_s, activity.deposit_share, activity.max_trade_fraction) == (0.5, 0.9, 0.2)
    assert dict(activity.deposit_max) == {"USDT": "25", "BTC": "0.001"}
    defaults = _build_config(sandbox_command.make_context("sandbox", []).params)
    assert defaults.ledger_context == "order_id" and defaults.activity.rate_per_s == 0.0


def test_cli_refuses_a_malformed_deposit_max() -> None:
    """--activity-deposit-max without CURRENCY=AMOUNT is refused with a message naming the option."""
    params = sandbox_command.make_context("sandbox", ["--activity-deposit-max", "USDT"]).params
    with pytest.raises(ValueError, match="--activity-deposit-max takes CURRENCY=AMOUNT"):
        _build_config(params)
