"""``provisioner sandbox`` as a real process: prints its URL and switches, serves, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


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
