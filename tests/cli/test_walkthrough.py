"""The README's "Operating it" walk-through, run for real: one incident (a cap refusal, an exchange outage, a dead
letter) with the commands on-call types; every line the README quotes as printed must still be printed."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox import SandboxConfig, start_server
from tests.cli.test_cli import env_of, run
from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig

README = Path(__file__).parents[2] / "README.md"


def _walkthrough() -> str:
    """The README's walk-through (from its heading to the next second-level heading)."""
    text = README.read_text()
    return text.split("### An incident, end to end", 1)[1].split("\n## ", 1)[0]


def check(env: dict[str, str], *args: str, code: int, expect: list[str]) -> str:
    """Run ``provisioner ARGS``; assert its exit status and that each expected line is printed and quoted."""
    status, out, err = run(env, *args)
    printed = out + err
    print(f"$ provisioner {' '.join(args)}\n{printed}")
    assert status == code, printed
    quoted = _walkthrough()
    for line in expect:
        assert line in printed, f"provisioner {' '.join(args)} no longer prints {line!r}"
        assert line in quoted, f"the README's walk-through does not quote {line!r}"
    return printed


def test_the_readme_walkthrough_still_prints_what_it_quotes(redis_url: str, key_prefix: str) -> None:
    config = SandboxConfig(initial_balances={"MAIN": {"USDT": "10000"}, "TRADE": {}})
    with WorkerRig(redis_url, key_prefix, config=config) as rig, start_server(rig.exchange) as server:
        env = {**env_of(rig, server.url), "COLUMNS": "100", "PROVISIONER_FUNDING_CAP_PER_CUSTOMER": "USDT=1000"}
        # 1. a cap refusal: KYC asks for 1500 USDT, the per-customer cap is 1000
        ev = events_for("acme-7", funding=(("USDT", "1500"),))
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["kyc"])
        rig.wait_for(lambda: "status: refused" in run(env, "customer", "show", "acme-7")[1], what="the cap refusal")
        check(
            env,
            "customer",
            "show",
            "acme-7",
            code=0,
            expect=["status: refused", "note: per-customer cap of 1000 USDT would be exceeded (already funded 0)"],
        )
        raised = {**env, "PROVISIONER_FUNDING_CAP_PER_CUSTOMER": "USDT=2000"}
        check(
            raised, "customer", "retry", "acme-7", code=0, expect=["idle: converged (steps: Transfer, ConfirmTransfer)"]
        )
        check(raised, "customer", "show", "acme-7", code=0, expect=["status: committed", "funding.redecided"])
        # 2. an exchange outage: every call answers 5xx until the retries run out
        rig.exchange.update_config({"faults": {"rate_5xx": 1.0}})
        ev = events_for("acme-8")
        rig.publisher.publish(ev["created"])
        rig.wait_for(lambda: rig.runtime.dead_letters().list(), timeout=30, what="acme-8 dead-lettered")
        (letter,) = json.loads(run(env, "dlq", "list", "--json")[1])
        check(
            env,
            "dlq",
            "list",
            code=0,
            expect=["1 dead letter(s)", "kind: retryable", "RetryableError: get_sub_accounts: Internal Server Error"],
        )
        check(env, "dlq", "show", letter["id"][:8], code=0, expect=["retries: 4", "final traceback:"])
        check(
            env,
            "top",
            "--once",
            code=0,
            expect=["dead letters (dlq show / replay): 1", "RetryableError: get_sub_accounts: Internal Server Error"],
        )
        # 3. the outage ends: replay the dead letter
        rig.exchange.update_config({"faults": {"rate_5xx": 0.0}})
        check(env, "dlq", "replay", "--all", code=0, expect=[": replayed", "1 replayed"])
        rig.wait_for(lambda: rig.runtime.dead_letters().list() == [], what="no dead letter left")
        rig.wait_for(lambda: len(rig.exchange.state_snapshot()["subAccounts"]) >= 2, what="acme-8's sub-account")
        check(env, "dlq", "list", code=0, expect=["0 dead letter(s)"])
