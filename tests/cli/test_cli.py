"""The ``provisioner`` command line, run as an operator would (click's runner, real Redis, the simulator)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from sandbox import SandboxConfig, start_server
from tests.core.harness import events_for
from tests.private_redis import free_port
from tests.runtime.rig import WorkerRig
from worker.exchange.models import Permission


def env_of(rig: WorkerRig, url: str) -> dict[str, str]:
    s = rig.settings
    return {
        "REDIS_URL": s.redis_url,
        "PROVISIONER_REDIS_PREFIX": s.key_prefix,
        "PROVISIONER_STATE_DIR": s.state_dir or "",
        "KUCOIN_BROKER_BASE_URL": url,
        "KUCOIN_SPOT_BASE_URL": url,
        "PROVISIONER_FUNDING_CAP_PER_CUSTOMER": "USDT=1000,BTC=1,ETH=5,USDC=1000,KCS=100",
    }


@pytest.fixture
def provisioned(redis_url: str, key_prefix: str) -> Iterator[tuple[WorkerRig, str, dict[str, str]]]:
    """A worker that provisioned two customers, the simulator on loopback, and the CLI's environment."""
    config = SandboxConfig(initial_balances={"MAIN": {"USDT": "300"}, "TRADE": {}})
    with WorkerRig(redis_url, key_prefix, config=config) as rig, start_server(rig.exchange) as server:
        for customer in ("cli-a", "cli-b"):
            ev = events_for(customer)
            rig.publisher.publish(ev["created"])
            rig.publisher.publish(ev["kyc"])
        rig.wait_for(lambda: len(rig.live_keys()) == 2, what="two keys")
        rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="one customer blocked: short of funds")
        time.sleep(0.2)
        yield rig, server.url, env_of(rig, server.url)


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)
    # the rig's worker threads run in this process and may log to the runner's captured stdout meanwhile
    out = "\n".join(line for line in result.stdout.splitlines() if not _is_log_line(line))
    return result.exit_code, out, result.stderr


def _is_log_line(line: str) -> bool:
    return " [info     ] " in line or " [warning  ] " in line or '"logger": ' in line


def test_publish_reports_each_refused_line_and_goes_on(redis_url: str, key_prefix: str) -> None:
    with WorkerRig(redis_url, key_prefix) as rig:
        ev = events_for("cli-pub")
        lines = [
            json.dumps(ev["created"]),
            "{not json",
            json.dumps({**ev["kyc"], "data": {"permissions": ["x"]}}),
            "",
            json.dumps(ev["kyc"]),
        ]
        code, out, err = run(env_of(rig, "http://127.0.0.1:9"), "publish", "-", stdin="\n".join(lines))
        assert code == 1
        assert "line 2: refused: $: not valid JSON" in err
        assert "line 3: refused: data.permissions.0: Input should be 'general', 'spot' or 'futures'" in err
        assert "published 2 event(s), refused 2" in err
        code, out, _ = run(env_of(rig, "http://127.0.0.1:9"), "publish", "--json", "-", stdin=lines[0])
        assert code == 0 and json.loads(out)["status"] == "published"


def test_publish_stops_on_a_redis_outage_with_its_own_exit_status(redis_url: str, key_prefix: str) -> None:
    """Redis unavailable is not a refusal: exit 3 and a line saying where it stopped and that re-running is safe,
    not a traceback with the refusals' exit 1."""
    down = f"redis://127.0.0.1:{free_port()}/1"
    line = json.dumps(events_for("cli-down")["created"])
    code, _, err = run({"REDIS_URL": down, "PROVISIONER_REDIS_PREFIX": key_prefix}, "publish", "-", stdin=line)
    assert code == 3
    assert "Redis unavailable (ConnectionError)" in err and "stopped at line 1" in err
    assert "publishing the same file again is safe" in err and "Traceback" not in err
    code, out, _ = run(
        {"REDIS_URL": down, "PROVISIONER_REDIS_PREFIX": key_prefix}, "publish", "--json", "-", stdin=line
    )
    assert code == 3 and json.loads(out) == {"status": "stopped", "line": 1, "error": "ConnectionError"}


def test_exchange_commands_read_the_exchange(provisioned) -> None:
    rig, _, env = provisioned
    code, out, _ = run(env, "exchange", "info", "--json")
    assert code == 0 and json.loads(out)["account_size"] == 2
    code, out, _ = run(env, "exchange", "sub-accounts", "--json")
    subs = json.loads(out)["items"]
    assert len(subs) == 2
    (uid,) = {t["specialUid"] for t in rig.exchange.state_snapshot()["transfers"]}  # the customer that was funded
    code, out, _ = run(env, "exchange", "keys", uid, "--json")
    assert code == 0 and json.loads(out)[0]["label"] == "prov-g0000" and "secret" not in out.lower()
    code, out, _ = run(env, "exchange", "balances", uid)
    assert code == 0 and "USDT" in out
    order_id = rig.exchange.state_snapshot()["transfers"][0]["orderId"]
    code, out, _ = run(env, "exchange", "transfer", order_id, "--json")
    assert json.loads(out)["status"] == "SUCCESS"
    code, out, _ = run(env, "exchange", "kyc", uid, "--json")
    assert json.loads(out)[0]["status"] == "NONE"
    code, out, _ = run(env, "exchange", "rebate", "--begin", "20261001", "--end", "20261101")
    assert code == 0 and out.startswith("http")
    code, _, err = run(env, "exchange", "rebate", "--begin", "20260101", "--end", "20261231")
    assert code == 1 and "invalid_request" in err


def test_customer_show_prints_desired_recorded_and_the_journal(provisioned) -> None:
    _, _, env = provisioned
    code, out, _ = run(env, "customer", "show", "cli-a", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["desired"]["permissions"] == ["general", "spot"]
    assert data["recorded"]["keys"][0]["secret_held"] is True
    assert [e["action"] for e in data["journal"]][:2] == ["customer.opened", "intent"]
    assert "secret" not in json.dumps(data["journal"]).lower()
    code, out, _ = run(env, "customer", "show", "cli-a")
    assert code == 0 and "journal" in out and "prov-g0000" in out
    code, _, err = run(env, "customer", "show", "nobody")
    assert code == 1 and "no customer" in err


def test_dlq_list_show_replay_purge(provisioned) -> None:
    rig, _, env = provisioned
    code, out, _ = run(env, "dlq", "list", "--json")
    (letter,) = json.loads(out)
    assert letter["kind"] == "blocked" and "account.available.amount" in letter["reason"]
    code, out, _ = run(env, "dlq", "show", letter["id"])
    assert code == 0 and "final traceback" in out and "StepsBlocked" in out
    code, out, _ = run({**env, "COLUMNS": "80"}, "dlq", "list")  # no terminal, 80 columns
    assert "1 dead letter(s)" in out and letter["id"] in out and "…" not in out
    assert "account.available.amount" in out and max(len(line) for line in out.splitlines()) <= 80
    code, out, _ = run(env, "dlq", "show", letter["id"][:8])
    assert code == 0 and letter["id"] in out
    code, _, err = run(env, "dlq", "show", "zz")
    assert code == 1 and "no dead letter whose id starts with 'zz'" in err
    rig.exchange.credit(rig.exchange.broker_uid, "USDT", "MAIN", "1000")
    code, out, _ = run(env, "dlq", "replay", letter["id"][:8])
    assert code == 0 and f"{letter['id']}: replayed" in out
    code, out, _ = run(env, "dlq", "replay", letter["id"])
    assert "not found (already replayed?)" in out and "0 replayed" in out
    rig.wait_for(lambda: len(rig.exchange.state_snapshot()["transfers"]) == 2, what="cli-b funded after replay")
    rig.runtime.actors.handle_event.send({"id": "junk"})
    rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="a new dead letter")
    code, out, _ = run(env, "dlq", "purge", stdin="n\n")
    assert code == 1 and len(rig.runtime.dead_letters().list()) == 1
    code, out, _ = run(env, "dlq", "purge", "--yes")
    assert code == 0 and "purged 1" in out and rig.runtime.dead_letters().list() == []


def test_verify_passes_a_correct_state_and_fails_a_broken_one(provisioned, tmp_path: Path) -> None:
    rig, url, env = provisioned
    rig.exchange.credit(rig.exchange.broker_uid, "USDT", "MAIN", "1000")
    run(env, "dlq", "replay", "--all")
    rig.wait_for(lambda: len(rig.exchange.state_snapshot()["transfers"]) == 2, what="both funded")
    time.sleep(0.3)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(json.dumps(events_for(c)[n]) + "\n" for c in ("cli-a", "cli-b") for n in ("created", "kyc"))
    )
    code, out, _ = run(env, "verify", "--events", str(events), "--sandbox", url)
    assert (code, out.strip()) == (0, "no violations")
    uid = rig.live_keys()[0]["uid"]
    rig.runtime.app.exchange.api_keys.add(
        uid=uid, passphrase="Passphrase123", ip_whitelist=["10.0.0.1"], permissions=[Permission.SPOT], label="stray"
    )
    code, out, _ = run(env, "verify", "--events", str(events), "--sandbox", url, "--json")
    assert code == 1 and "orphan key" in out


def test_verify_through_the_exchange_api_finds_what_the_simulators_state_would(provisioned, tmp_path: Path) -> None:
    """`verify --exchange` reads only what KuCoin's API shows (listings with masked IPs, transfer history, the
    Special Account's ledger): a sound end state passes; an orphan key and a transfer no line asked for fail."""
    from decimal import Decimal

    from worker.exchange.models import AccountType, Direction

    rig, _, env = provisioned
    rig.exchange.credit(rig.exchange.broker_uid, "USDT", "MAIN", "1000")
    run(env, "dlq", "replay", "--all")
    rig.wait_for(lambda: len(rig.exchange.state_snapshot()["transfers"]) == 2, what="both funded")
    time.sleep(0.3)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(json.dumps(events_for(c)[n]) + "\n" for c in ("cli-a", "cli-b") for n in ("created", "kyc"))
    )
    code, out, _ = run(env, "verify", "--events", str(events), "--exchange")
    assert (code, out.strip()) == (0, "no violations")
    uid = rig.live_keys()[0]["uid"]
    rig.runtime.app.exchange.transfers.transfer(
        currency="USDT",
        amount=Decimal(5),
        direction=Direction.OUT,
        account_type=AccountType.MAIN,
        special_uid=uid,
        special_account_type=AccountType.TRADE,
        client_oid="by-hand",
    )
    code, out, _ = run(env, "verify", "--events", str(events), "--exchange", "--json")
    assert code == 1 and "nothing else transferred" in out


def test_schema_command_prints_the_published_schema() -> None:
    code, out, _ = run({}, "schema")
    assert code == 0
    assert json.loads(out) == json.loads((Path(__file__).parents[2] / "schema/events.schema.json").read_text())


def test_settings_errors_stop_start_up_naming_the_variable() -> None:
    code, _, err = run({"PROVISIONER_ENV": "production"}, "dlq", "list")
    assert code == 1 and "KUCOIN_API_SECRET" in err and "PROVISIONER_ENCRYPTION_KEYS" in err
    code, _, err = run({"KUCOIN_HTTP_READ_TIMEOUT": "soon"}, "dlq", "list")
    assert code == 1 and "KUCOIN_HTTP_READ_TIMEOUT" in err
    code, _, err = run({"PROVISIONER_FUNDING_CAP_PER_DAY": "USDT=-5"}, "dlq", "list")
    assert code == 1 and "PROVISIONER_FUNDING_CAP_PER_DAY" in err and "positive" in err
    code, _, err = run({"PROVISIONER_ENCRYPTION_KEYS": "k1=not-a-key"}, "customer", "show", "x")
    assert code == 1 and "PROVISIONER_ENCRYPTION_KEYS" in err


def test_customer_retry_unblocks_after_the_cause_is_fixed(provisioned) -> None:
    """On-call's path that needs no dead letter: fix the cause, `provisioner customer retry`."""
    rig, _, env = provisioned
    naming = rig.runtime.app.policy.naming
    (blocked,) = [c for c in ("cli-a", "cli-b") if rig.runtime.app.store.load(naming.customer_ref(c)).blocked]
    code, _, err = run(env, "customer", "retry", blocked)
    assert code == 1 and "still blocked" in err and "account.available.amount" in err
    rig.exchange.credit(rig.exchange.broker_uid, "USDT", "MAIN", "1000")
    code, out, _ = run(env, "customer", "retry", blocked)
    assert code == 0 and "Transfer" in out
    assert len(rig.exchange.state_snapshot()["transfers"]) == 2
    assert rig.runtime.app.redis.zcard(rig.runtime.app.keys.blocked) == 0


def test_customer_retry_clears_the_dead_letter_it_made_obsolete(provisioned) -> None:
    """A retry that leaves the customer unblocked drops the customer's dead letter (the gauge and DeadLettersPresent
    clear); a retry that is still blocked keeps it."""
    rig, _, env = provisioned
    naming = rig.runtime.app.policy.naming
    (blocked,) = [c for c in ("cli-a", "cli-b") if rig.runtime.app.store.load(naming.customer_ref(c)).blocked]
    (letter,) = rig.runtime.dead_letters().list()
    assert letter.kind == "blocked"
    code, _, err = run(env, "customer", "retry", blocked)
    assert code == 1 and "still blocked" in err and rig.runtime.dead_letters().list() == [letter]
    rig.exchange.credit(rig.exchange.broker_uid, "USDT", "MAIN", "1000")
    code, out, _ = run(env, "customer", "retry", blocked)
    assert code == 0 and f"cleared 1 dead letter(s) this retry made obsolete: {letter.message_id}" in out
    assert rig.runtime.dead_letters().list() == []
    assert sum(rig.runtime.dead_letters().count().values()) == 0


def test_settle_transfer_clears_the_dead_letter_of_the_block_it_decided(redis_url: str, key_prefix: str) -> None:
    """A transfer blocked for a verdict left a dead letter; the operator's verdict leaves nothing blocked, so the
    letter is dropped with it."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "none"})
    with (
        WorkerRig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="accept") as rig,
        start_server(rig.exchange) as server,
    ):
        env = {**env_of(rig, server.url), "PROVISIONER_CLIENT_OID_BEHAVIOUR": "accept"}
        ev = events_for("cli-verdict")
        rig.publisher.publish(ev["created"])
        rig.wait_for(lambda: rig.exchange.state_snapshot()["subAccounts"], what="the sub-account")
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 1.0}}}})
        rig.publisher.publish(ev["kyc"])
        (letter,) = rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="the transfer blocked for a verdict")
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 0.0}}}})
        step = "fund:cli-verdict-kyc_approved#0"
        code, out, err = run(env, "customer", "settle-transfer", "cli-verdict", step, "--committed")
        assert code == 0, err
        assert f"cleared 1 dead letter(s) this decision made obsolete: {letter.message_id}" in out
        assert rig.runtime.dead_letters().list() == []


def test_unstored_list_and_resend(provisioned) -> None:
    """On call, after EventsNotStored: see which events no worker has stored, and send them again."""
    rig, _, env = provisioned
    code, out, _ = run(env, "unstored", "list")
    assert code == 0 and "0 event(s) not stored yet" in out
    rig.worker.pause()
    rig.publisher.publish(events_for("cli-c")["created"])
    client, ns = rig.runtime.broker.client, rig.runtime.broker.namespace
    client.delete(f"{ns}:events", f"{ns}:events.msgs")  # lost inside the queue
    code, out, _ = run(env, "unstored", "list", "--json")
    (entry,) = json.loads(out)
    assert entry["type"] == "customer.created" and entry["queue"] == "events" and entry["resends"] == 0
    code, _, err = run(env, "unstored", "resend")
    assert code == 2 and "MESSAGE_ID or --all" in err
    code, out, _ = run(env, "unstored", "resend", entry["id"][:8])
    assert code == 0 and f"{entry['id']}: sent again" in out and "1 sent again" in out
    rig.worker.resume()
    rig.wait_for(lambda: rig.runtime.handoff.waiting() == 0, what="the event stored")
    code, out, _ = run(env, "unstored", "resend", "--all")
    assert code == 0 and "0 sent again" in out
    rig.worker.pause()
    rig.publisher.publish(events_for("cli-d")["created"])
    client.delete(f"{ns}:events", f"{ns}:events.msgs")
    (given_up,) = client.zrange(rig.runtime.app.keys.handoff("events"), 0, -1)
    client.zadd(rig.runtime.app.keys.handoff("events"), {given_up: float("inf")})  # the stale scan gave up on it
    code, out, _ = run(env, "unstored", "list")
    assert "given up" in out
    code, out, _ = run(env, "unstored", "resend", "--all")
    assert "0 sent again" in out, "given-up events are not re-sent by --all"
    code, out, _ = run(env, "unstored", "resend", "--all", "--include-given-up")
    assert "1 sent again" in out
    rig.worker.resume()
    rig.wait_for(lambda: rig.runtime.handoff.waiting() == 0, what="stored")


def test_state_show_and_trust(provisioned) -> None:
    """On-call sees the epoch, the mirror and a distrust; `state trust --yes` lifts it, and only with --yes."""
    rig, _, env = provisioned
    code, out, _ = run(env, "state", "show")
    assert code == 0 and "state: sound" in out
    rig.runtime.app.state.distrust("test: a repeated clientOid was executed again")
    code, out, _ = run(env, "state", "show")
    assert "distrusted" in out
    code, _, err = run(env, "state", "trust")
    assert code != 0 and "--yes" in err
    code, out, _ = run(env, "state", "trust", "--yes")
    assert code == 0 and rig.runtime.app.state.distrust_reason() is None


def test_worker_check_state_exits_3_on_a_lost_state(provisioned) -> None:
    rig, _, env = provisioned
    code, out, _ = run(env, "worker", "--check-state")
    assert (code, out.strip()) == (0, "state: sound")
    r = rig.runtime.app.redis
    for key in r.scan_iter(f"{rig.settings.key_prefix}:*", count=1000):
        r.delete(key)
    code, _, err = run(env, "worker", "--check-state")
    assert code == 3 and "state lost" in err


def test_customer_show_and_dlq_show_render_values_not_python_reprs(provisioned) -> None:
    """Permissions, blocked steps and the pending intent read as text; times are UTC, not epoch milliseconds."""
    rig, _, env = provisioned
    naming = rig.runtime.app.policy.naming
    (blocked,) = [c for c in ("cli-a", "cli-b") if rig.runtime.app.store.load(naming.customer_ref(c)).blocked]
    code, out, _ = run({**env, "COLUMNS": "100"}, "customer", "show", blocked)
    assert code == 0
    for repr_mark in ("{'", "('", "['", "': "):
        assert repr_mark not in out, f"{repr_mark!r} in:\n{out}"
    assert "permissions: general, spot" in out
    step = next(iter(rig.runtime.app.store.load(naming.customer_ref(blocked)).blocked))
    assert f"blocked  {step}" in out and "account.available.amount" in out
    (letter,) = rig.runtime.dead_letters().list()
    code, out, _ = run(env, "dlq", "show", letter.message_id)
    when = datetime.fromtimestamp(letter.failed_at_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    assert f"failed: {when}" in out and str(letter.failed_at_ms) not in out


def test_publish_refuses_a_line_that_is_not_utf8_by_number_and_publishes_the_rest(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    with WorkerRig(redis_url, key_prefix) as rig:
        ev = events_for("cli-utf8")
        source = tmp_path / "events.jsonl"
        source.write_bytes(
            json.dumps(ev["created"]).encode()
            + b"\n"
            + b'{"id": "caf\xe9"}\n'
            + b"\xff\xfe\n"
            + json.dumps(ev["kyc"]).encode()
        )
        result = CliRunner().invoke(main, ["publish", str(source)], env=env_of(rig, "http://127.0.0.1:9"))
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code == 1
        assert "line 2: refused: $: not valid UTF-8: byte 0xE9 at column 12" in result.stderr
        assert "line 3: refused: $: not valid UTF-8: byte 0xFF at column 1" in result.stderr
        assert "published 2 event(s), refused 2" in result.stderr


def test_recover_takes_what_the_upstream_heard(
    provisioned: tuple[WorkerRig, str, dict[str, str]], tmp_path: Path
) -> None:
    """``recover --heard FILE`` reads the events the upstream received and says how many funding outcomes it
    recorded; a malformed file is one line naming the problem, exit 1, nothing started."""
    rig, _, env = provisioned
    heard = tmp_path / "heard.jsonl"
    app = rig.runtime.app
    events = [json.loads(f["event"]) for _, f in app.redis.xrange(app.keys.outbound)]
    heard.write_text("\n".join(json.dumps(e) for e in events), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text("[", encoding="utf-8")
    code, out, err = run(env, "recover", "--yes", "--force", "--heard", str(bad))
    assert code == 1 and "not a JSON array" in err and "Traceback" not in out + err
    code, out, _ = run(env, "recover", "--yes", "--force", "--json", "--heard", str(heard))
    assert code == 0, out
    completed = [e for e in events if e["type"] == "funding.completed"]
    assert completed and json.loads(out[out.index("{") :])["heard_outcomes"] == len(completed)


def test_recover_republished_declares_the_republication_only_after_a_recovery(
    provisioned: tuple[WorkerRig, str, dict[str, str]],
) -> None:
    """``recover --republished`` is refused (one line, exit 1) while no recovery after a loss is open; after one
    it records the declaration the planner reads. Both say until when no funding line is sent (the ledger may not
    list a transfer in flight at the loss yet): a declaration that soon does not end that wait."""
    rig, _, env = provisioned
    app = rig.runtime.app
    code, out, err = run(env, "recover", "--republished")
    assert code == 1 and "nothing to declare" in err and "Traceback" not in out + err
    code, out, _ = run(env, "recover", "--yes", "--force")
    assert code == 0, out
    assert "no funding line is sent, for any customer, until" in out
    assert app.redis.get(app.keys.recovery_republished_at) is None
    code, out, _ = run(env, "recover", "--republished", "--json")
    assert code == 0, out
    declared = json.loads(out[out.index("{") :])
    assert app.redis.get(app.keys.recovery_republished_at) == str(declared["republished_at_ms"])
    assert declared["daily_caps_due_at_ms"] == int(app.redis.get(app.keys.recovery_caps_due_at))


def test_customer_retry_interrupted_by_the_exchange_leaves_the_customer_to_the_workers_at_once(provisioned) -> None:
    """The retry's transfer is accepted, then every status read fails (5xx): the command says it was interrupted and
    that the workers go on, and the customer is due now — not at the failure backstop a quarter of an hour later,
    with a transfer that moved money unconfirmed and the upstream not told."""
    rig, _, env = provisioned
    app = rig.runtime.app
    naming = app.policy.naming
    (blocked,) = [c for c in ("cli-a", "cli-b") if app.store.load(naming.customer_ref(c)).blocked]
    rig.exchange.credit(rig.exchange.broker_uid, "USDT", "MAIN", "1000")
    rig.exchange.update_config({"faults": {"per_endpoint": {"get_transfer_history": {"5xx": 1.0}}}})
    code, _, err = run(env, "customer", "retry", blocked)
    assert code == 1 and "interrupted by the exchange" in err and "Traceback" not in err, err
    ref = naming.customer_ref(blocked)
    due = app.due.next_due_ms(ref)
    claimed = app.redis.zscore(f"{app.keys.due}:inflight", ref) is not None  # a scheduler tick took it already
    assert claimed or (due is not None and due <= app.reconciler.services.now_ms() + 1_000), due
    assert any(t.status.value == "accepted" for t in app.store.load(ref).transfers.values())


def test_a_naming_mismatch_found_mid_recovery_is_one_line_not_a_traceback(
    provisioned: tuple[WorkerRig, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process of another name secret may record its fingerprint between ``recover``'s naming check and its epoch
    write (a race of milliseconds): the recovery's script then refuses with ``NamingMismatch``. Like every refusal of
    the command line it is one sentence naming the setting, exit 1, never a traceback — from any command."""
    import worker.recovery
    from worker.store.epoch import NamingMismatch

    _, _, env = provisioned

    def raced(*args: object, **kwargs: object) -> None:
        raise NamingMismatch("this state was made with another PROVISIONER_NAME_SECRET (recorded just now)")

    monkeypatch.setattr(worker.recovery, "recover", raced)
    result = CliRunner().invoke(main, ["recover", "--yes", "--force"], env=env)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, NamingMismatch)
    assert "PROVISIONER_NAME_SECRET" in result.stderr
