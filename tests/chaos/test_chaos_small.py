"""The chaos run's small configuration (50 customers with top-ups, customer activity on every live sub-account,
kills, a SIGTERM of every worker, a Redis kill -9 with its AOF, then a loss of Redis' state and the on-call's
recovery, 10 % simulator faults and failing transfers): zero invariant violations — the upstream told the truth
of every funding line included — and zero secrets found anywhere; every worker halted on the loss and sent nothing
while halted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("chaos")]  # one worker starts both runs, side by side
ROOT = Path(__file__).parents[2]

CONFIGURATIONS = {
    # a repeated clientOid is refused: a lost transfer is settled by sending it again; Redis restarts empty
    "reject-restart": ["--client-oid", "reject", "--state-loss", "restart"],
    # a repeat executes again and the worker is not told so: the ledger (naming clientOids) decides; keys flushed
    "accept-client_oid-flush": ["--client-oid", "accept", "--ledger-context", "client_oid", "--state-loss", "flush"],
}


class Run:
    """One chaos run in a subprocess (SIGTERM stops its workers and its Redis before it exits)."""

    def __init__(self, options: list[str], out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "bench/chaos.py",
                "--customers",
                "50",
                "--kills",
                "2",
                "--quick",
                *options,
                "--timeout",
                "300",
                "--patience",
                "120",
                "--out",
                str(out),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            stdout, stderr = self.proc.communicate(timeout=120)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Every configuration starts at once: a run's time goes mostly to the worker's timers (settle delays, ledger
    re-checks), not to the CPU, so side by side they take little longer than one."""
    started = {
        name: Run(options, tmp_path_factory.mktemp(name) / "chaos.json") for name, options in CONFIGURATIONS.items()
    }
    yield started
    for run in started.values():
        if run.proc.poll() is None:
            run.finish(0.1)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", CONFIGURATIONS.keys())
def test_small_chaos_run_converges_without_violations(runs: dict[str, Run], name: str) -> None:
    result = runs[name].finish(560)
    out = runs[name].out
    assert out.exists(), result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["violations"] == [], figures["violations"][:10]
    assert figures["secret_hits"] == []
    assert figures["converge_after_publish_s"] is not None
    assert figures["chaos"]["kills"] == 2 and figures["chaos"]["redis_restarts"] == 1
    assert sum(figures["faults_injected"].get(k, 0) for k in ("5xx", "drop", "429", "slow")) > 0
    assert figures["activity"]["trades"] > 0 and figures["activity"]["deposits"] > 0, "balances moved under us"
    assert figures["topup_events"] > 0 and figures["outbound"].get("funding.completed", 0) > 0
    loss = figures["state_loss"]
    assert loss["all_halted"], loss["halted"]
    assert len(loss["halted"]) == figures["workers"], "every worker halted"
    assert loss["exchange_writes_while_halted"] == {}, "nothing was sent while the workers were halted"
    assert loss["recover"]["epoch"] and loss["recover"]["adopted"], "the on-call recovered and adopted"
    assert figures["republished"] > 0 and figures["state_lost_logs"] > 0
    assert result.returncode == 0, result.stdout[-2000:]
