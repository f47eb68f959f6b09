"""Lost or rolled-back state is detected before anything is acted on, and recovery from the exchange makes
re-delivered events repeat nothing: no second sub-account, no orphan key, no second transfer, no customer closed
while its key and money live on (issue 10, failure 5)."""

from __future__ import annotations

import random
import shutil
import uuid
from decimal import Decimal
from typing import Any

import pytest

from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for, settings_for
from worker.bootstrap import App, build_app
from worker.intake import Accepted
from worker.provisioning.reconciler import StepsBlocked
from worker.recovery import declare_republished, recover
from worker.store.epoch import StateLost

LIFECYCLE = ("created", "kyc", "ip")


def lose_everything(rig: Rig) -> None:
    """Redis restarted without persistence: every key of ours is gone."""
    for key in rig.app.redis.scan_iter(f"{rig.settings.key_prefix}:*", count=1000):
        rig.app.redis.delete(key)


def second_host(rig: Rig, *, same_host: bool) -> App:
    """Another worker process on the same Redis and exchange: on this host (its mirror) or on a new one (none)."""
    settings = rig.settings
    if not same_host:
        env_dir = f"{settings.state_dir}-other-{uuid.uuid4().hex[:6]}"
        settings = settings.model_copy(update={"state_dir": env_dir})
    return build_app(settings, transport=rig.transport, clock=rig.clock)


def exchange_effects(rig: Rig) -> tuple[int, int, int]:
    state = rig.state()
    live = [k for k in state["apiKeys"] if k["deletedAt"] is None]
    return len(state["subAccounts"]), len(live), len(state["transfers"])


def redeliver(app: App, events: list[dict[str, Any]], seed: int = 1) -> str:
    """Every event again, twice, in a shuffled order (what the upstream's re-publication looks like)."""
    copies = [e for e in events for _ in range(2)]
    random.Random(seed).shuffle(copies)
    refs = set()
    for event in copies:
        outcome = app.intake.accept(event)
        assert isinstance(outcome, Accepted), outcome
        refs.add(outcome.ref)
    (ref,) = refs
    return ref


def settle_with(rig: Rig, app: App, ref: str, *, rounds: int = 40) -> list[StepsBlocked]:
    """``Rig.settle`` for another app on the rig's exchange and clock."""
    blocked = []
    for _ in range(rounds):
        app.due.cancel(ref)  # taken off the schedule as the scheduler's claim does: a run re-schedules it
        try:
            app.reconciler.run(ref)
        except StepsBlocked as exc:
            blocked.append(exc)
        wake = app.due.next_due_ms(ref)
        now = int(rig.clock() * 1000)
        if wake is None or wake - now > 3_600_000:
            return blocked
        if wake > now:
            rig.clock.advance_ms(wake - now)
    raise AssertionError("did not settle")


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Rig:
    rig = Rig(redis_url, key_prefix)
    yield rig  # type: ignore[misc]
    rig.close()


def provisioned(rig: Rig, customer: str) -> tuple[str, dict[str, dict[str, Any]]]:
    ev = events_for(customer)
    ref = rig.publish(*(ev[name] for name in LIFECYCLE))[0]
    rig.settle(ref)
    return ref, ev


def test_a_running_worker_refuses_to_act_on_a_redis_that_lost_its_state(rig: Rig) -> None:
    """Redis restarted empty under a running worker: re-delivered events are refused before anything is sent."""
    _, ev = provisioned(rig, "lost-live")
    before = exchange_effects(rig)
    lose_everything(rig)
    with pytest.raises(StateLost) as lost:
        rig.app.intake.accept(ev["created"])
    assert lost.value.kind == "missing"
    assert exchange_effects(rig) == before


@pytest.mark.parametrize("same_host", [True, False], ids=["restarted-worker", "new-host"])
def test_a_starting_worker_refuses_a_redis_that_lost_its_state(rig: Rig, same_host: bool) -> None:
    """A worker starting after the loss finds no epoch: its host's mirror remembers one, or (on a host without
    one) the exchange already has our sub-accounts. It refuses, and nothing is sent."""
    _, ev = provisioned(rig, "lost-start")
    before = exchange_effects(rig)
    lose_everything(rig)
    app = second_host(rig, same_host=same_host)
    try:
        with pytest.raises(StateLost) as lost:
            app.intake.accept(ev["created"])
        assert lost.value.kind == ("missing" if same_host else "traces")
        assert exchange_effects(rig) == before
    finally:
        app.close()


def test_a_rollback_is_caught_by_the_running_worker_and_by_the_hosts_mirror(rig: Rig) -> None:
    """Redis went back to an older snapshot (or lost its last second of writes): the worker that saw the newer
    writes refuses, and so does any worker of that host starting afterwards."""
    ref, ev = provisioned(rig, "rollback")
    r = rig.app.redis
    keys = [k for k in r.scan_iter(f"{rig.settings.key_prefix}:*", count=1000)]
    snapshot = {k: r.dump(k) for k in keys}
    rig.publish(ev["rotate"])
    rig.settle(ref)
    rig.app.state.check()  # the periodic check brings the host's mirror up to date
    for k in r.scan_iter(f"{rig.settings.key_prefix}:*", count=1000):
        r.delete(k)
    for k, value in snapshot.items():
        r.restore(k, 0, value, replace=True)
    before = exchange_effects(rig)
    with pytest.raises(StateLost) as live:
        rig.app.intake.accept(ev["offboard"])
    assert live.value.kind == "rolled_back"
    app = second_host(rig, same_host=True)
    try:
        with pytest.raises(StateLost) as restarted:
            app.intake.accept(ev["offboard"])
        assert restarted.value.kind == "rolled_back"
    finally:
        app.close()
    assert exchange_effects(rig) == before


def test_one_halted_worker_halts_them_all(rig: Rig) -> None:
    ref, _ = provisioned(rig, "halted")
    rig.app.state.halt("rolled_back: seen by another worker")
    with pytest.raises(StateLost) as lost:
        rig.app.reconciler.run(ref)
    assert lost.value.kind == "halted"


CASES = [
    ("dedupe", "dedupe", "order_id"),
    ("reject", "reject", "order_id"),
    ("accept", "unknown", "client_oid"),
    ("accept", "unknown", "order_id"),
    ("dedupe", "unknown", "order_id"),
]


@pytest.mark.parametrize(("exchange_mode", "worker_mode", "context"), CASES)
def test_after_recovery_redelivered_events_repeat_nothing(
    redis_url: str, key_prefix: str, exchange_mode: str, worker_mode: str, context: str
) -> None:
    """After a total loss and `provisioner recover`, the upstream re-publishes everything (twice, shuffled): the
    sub-account is found, the line is not paid again, the key whose secret was lost is replaced and then
    revoked, and the upstream is told each outcome."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": exchange_mode, "ledger_context": context})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR=worker_mode)
    try:
        ref, ev = provisioned(rig, f"recover-{exchange_mode}-{context}")
        (old_key,) = [k["apiKey"] for k in rig.state()["apiKeys"] if k["deletedAt"] is None]
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)  # the host was replaced too
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: Redis restarted without persistence")
            assert report.detected.startswith("traces") and report.ours == 1
            ref = redeliver(app, [ev[name] for name in LIFECYCLE])
            declare_republished(app)  # the on-call, once the upstream has re-published
            blocked = settle_with(rig, app, ref)
            assert not blocked, blocked

            state = rig.state()
            assert len(state["subAccounts"]) == 1
            outs = [t for t in state["transfers"] if t["direction"] == "OUT"]
            assert [t["amount"] for t in outs] == ["250"], "the line is never paid twice"
            live = [k for k in state["apiKeys"] if k["deletedAt"] is None]
            assert len(live) == 1 and live[0]["apiKey"] != old_key, "the key without its secret was replaced"
            record = app.store.load(ref)
            assert [k.api_key for k in record.live_keys] == [live[0]["apiKey"]]
            assert record.live_keys[0].sealed is not None
            outbound = [(e["type"], e.get("api_key") or e.get("key")) for e in _outbound(app)]
            assert ("api_key.revoked", old_key) in outbound
            assert ("api_key.issued", live[0]["apiKey"]) in outbound
            assert ("funding.completed", f"{ev['kyc']['id']}#0") in outbound
            assert {e["action"] for e in app.store.journal(ref)} >= {"audited"}
        finally:
            app.close()
    finally:
        rig.close()


def test_without_any_evidence_a_lost_transfer_waits_for_an_operator_after_recovery(
    redis_url: str, key_prefix: str
) -> None:
    """The exchange executes a repeated clientOid again and its ledger names nothing: after the loss the line is
    neither paid again nor told as paid; an operator decides."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "none"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="accept")
    try:
        ref, ev = provisioned(rig, "recover-blind")
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test")
            ref = redeliver(app, [ev[name] for name in LIFECYCLE])
            declare_republished(app)  # the on-call, once the upstream has re-published
            settle_with(rig, app, ref)
            outs = [t for t in rig.state()["transfers"] if t["direction"] == "OUT"]
            assert len(outs) == 1
            record = app.store.load(ref)
            assert [s for s, b in record.blocked.items() if b.manual] == [f"fund:{ev['kyc']['id']}#0"]
            assert not [e for e in _outbound(app) if e["type"] == "funding.completed"]
        finally:
            app.close()
    finally:
        rig.close()


def test_an_offboarding_redelivered_alone_after_a_loss_revokes_and_sweeps_before_closing(rig: Rig) -> None:
    """Only the offboarding came back after the loss: the customer is not closed as "offboarded before it was
    created" while its key and money live on; the audit finds them and offboarding takes them back."""
    ref, ev = provisioned(rig, "recover-offboard")
    uid = rig.record(ref).sub_account.uid
    lose_everything(rig)
    shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
    app = second_host(rig, same_host=True)
    try:
        recover(app, reason="test")
        outcome = app.intake.accept(ev["offboard"])
        assert isinstance(outcome, Accepted)
        settle_with(rig, app, outcome.ref)
        state = rig.state()
        assert not [k for k in state["apiKeys"] if k["deletedAt"] is None]
        (sub,) = [s for s in state["subAccounts"] if s["uid"] == uid]
        assert all(Decimal(v) == 0 for rows in sub["balances"].values() for v in rows.values())
        record = app.store.load(outcome.ref)
        assert record.closed_at_ms is not None
        assert [e["action"] for e in app.store.journal(outcome.ref) if e["action"] == "customer.closed"]
    finally:
        app.close()


def test_recover_leaves_a_sound_state_alone(rig: Rig) -> None:
    provisioned(rig, "sound")
    report = recover(rig.app, reason="test")
    assert report.detected == "ok" and report.epoch is None
    assert rig.app.state.audit_epoch is None


def _outbound(app: App) -> list[dict[str, Any]]:
    import json

    return [json.loads(f["event"]) for _, f in app.redis.xrange(app.keys.outbound)]


def test_settings_for_gives_each_prefix_its_own_mirror(redis_url: str) -> None:
    a, b = settings_for(redis_url, "pa"), settings_for(redis_url, "pb")
    assert a.state_dir != b.state_dir
