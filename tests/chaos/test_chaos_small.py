"""The chaos run's small configuration (50 customers, kills, a SIGTERM of every worker, a Redis kill -9 and
restart, 10 % simulator faults): zero invariant violations and zero secrets found anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("client_oid", ["reject"])
def test_small_chaos_run_converges_without_violations(tmp_path: Path, client_oid: str) -> None:
    out = tmp_path / "chaos.json"
    chaos = subprocess.Popen(
        [
            sys.executable,
            "bench/chaos.py",
            "--customers",
            "50",
            "--kills",
            "2",
            "--quick",
            "--client-oid",
            client_oid,
            "--timeout",
            "300",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = chaos.communicate(timeout=560)
    except subprocess.TimeoutExpired:
        chaos.terminate()  # SIGTERM: the run stops its workers and its Redis before it exits
        stdout, stderr = chaos.communicate(timeout=120)
    result = subprocess.CompletedProcess(chaos.args, chaos.returncode, stdout, stderr)
    assert out.exists(), result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["violations"] == [], figures["violations"][:10]
    assert figures["secret_hits"] == []
    assert figures["converge_after_publish_s"] is not None
    assert figures["chaos"]["kills"] == 2 and figures["chaos"]["redis_restarts"] == 1
    assert sum(figures["faults_injected"].get(k, 0) for k in ("5xx", "drop", "429", "slow")) > 0
    assert result.returncode == 0, result.stdout[-2000:]
