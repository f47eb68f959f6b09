"""Re-sealing under a new encryption key (``provisioner keys reseal``), and what a dropped key does: a clear block."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from cli.main import main
from handlers import steps
from tests.core.harness import STATE_DIR, Rig, events_for, kyc_documents
from worker.crypto import Keyring
from worker.provisioning.kyc_steps import KEY_ROLLOUT_GRACE_MS
from worker.reseal import ResealProgress, reseal
from worker.store.lock import CustomerLock

pytestmark = pytest.mark.redis

OLD = Fernet.generate_key().decode("ascii")
NEW = Fernet.generate_key().decode("ascii")


def with_documents(customer: str) -> dict[str, dict[str, Any]]:
    ev = events_for(customer)
    ev["kyc"] = {**ev["kyc"], "data": {**ev["kyc"]["data"], "kyc": kyc_documents("Ada")}}
    return ev


def ring(spec: str) -> Keyring:
    return Keyring.parse(spec, name="PROVISIONER_ENCRYPTION_KEYS")


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Any:
    """Customer ``sealed-a`` provisioned (its key's secret sealed under ``old``); ``sealed-b`` with KYC documents
    held (sealed under ``old``), never reconciled."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_ENCRYPTION_KEYS=f"old={OLD}")
    a = events_for("sealed-a")
    (ref_a,) = rig.publish(a["created"], a["kyc"])[:1]
    rig.settle(ref_a)
    (ref_b,) = rig.publish(*with_documents("sealed-b").values())[:1]
    rig.refs = (ref_a, ref_b)  # type: ignore[attr-defined]
    rig.published = [a["created"], a["kyc"]]  # type: ignore[attr-defined]
    yield rig
    rig.close()


def test_documents_under_a_dropped_key_block_the_kyc_step_by_name(redis_url: str, key_prefix: str) -> None:
    """Documents sealed under a key the keyring no longer lists: the KYC step is blocked, naming the key id and
    what to do, instead of failing with a generic error that is retried until it dead-letters — once the approval
    is older than a rollout lasts (``KEY_ROLLOUT_GRACE_MS``); until then it waits for a process that holds it."""
    first = Rig(redis_url, key_prefix, PROVISIONER_ENCRYPTION_KEYS=f"old={OLD}")
    (ref,) = first.publish(*list(with_documents("dropped").values())[:2])[:1]
    first.close()
    rig = Rig(redis_url, key_prefix, PROVISIONER_ENCRYPTION_KEYS=f"new={NEW}", PROVISIONER_PROXY_KYC="true")
    try:
        report = rig.run(ref)
        assert report.waited_pool == "key_rollout" and steps.KYC not in rig.record(ref).blocked, report
        rig.clock.advance_ms(KEY_ROLLOUT_GRACE_MS)
        rig.settle(ref)
        blocked = rig.record(ref).blocked[steps.KYC]
        assert "sealed under encryption key 'old'" in blocked.reason and "keys reseal" in blocked.reason
        assert rig.blocked and any("'old'" in reason for reason in rig.blocked[-1].reasons)
        assert OLD not in blocked.reason and NEW not in blocked.reason
    finally:
        rig.close()


def test_reseal_moves_every_held_value_to_the_active_key_then_the_old_key_can_go(rig: Any) -> None:
    """After a pass, the record's key secret and the held documents are under ``new``; with ``old`` removed the
    secret still opens and authenticates (``verify``) and the documents still open. A second pass changes nothing."""
    ref_a, ref_b = rig.refs
    app = rig.app
    app.keyring = ring(f"new={NEW},old={OLD}")
    seen: list[str] = []
    progress = reseal(app, on_progress=lambda p: seen.append(p.line()))
    assert progress.done and (progress.records, progress.keys, progress.documents) == (1, 1, 1)
    assert progress.scanned == 2 and progress.unopenable == {} and seen
    assert all(k.sealed.key_id == "new" for k in rig.record(ref_a).keys if k.sealed)
    (action,) = [j for j in app.store.journal(ref_a) if j["action"] == "keys.resealed"]
    assert action["to"] == "new" and action["from"] == ["old"] and action["actor"] == "operator"
    assert not app.redis.exists(app.keys.reseal), "a finished pass leaves no position behind"

    app.keyring = ring(f"new={NEW}")
    assert rig.verify(rig.published) == []
    (held,) = app.redis.hvals(app.keys.docs(ref_b))
    from handlers.records import SealedSecret

    assert app.keyring.open(SealedSecret.model_validate_json(held))["first_name"] == "Ada"
    again = reseal(app)
    assert again.done and (again.records, again.keys, again.documents) == (0, 0, 0)


def test_values_under_a_key_we_no_longer_have_are_reported_and_left_alone(rig: Any) -> None:
    ref_a, ref_b = rig.refs
    app = rig.app
    before = app.store.load(ref_a)
    app.keyring = ring(f"new={NEW}")
    progress = reseal(app)
    assert progress.unopenable == {ref_a: ["old"], ref_b: ["old"]}
    assert (progress.records, progress.keys, progress.documents) == (0, 0, 0)
    assert app.store.load(ref_a) == before


def test_a_busy_customer_is_tried_again_and_reported_if_it_stays_busy(rig: Any) -> None:
    """A reconcile holding the lock: the pass goes on, retries it at the end, and reports it; the next run does it."""
    ref_a, _ = rig.refs
    app = rig.app
    app.keyring = ring(f"new={NEW},old={OLD}")
    lock = CustomerLock(app.redis, app.keys, ref_a, ttl_ms=10_000)
    assert lock.acquire()
    progress = reseal(app, sleep=lambda s: None)
    assert progress.busy == [ref_a] and not progress.done and progress.documents == 1
    lock.release()
    resumed = reseal(app, sleep=lambda s: None)
    assert resumed.done and resumed.keys == 1 and resumed.busy == []


def test_a_stopped_pass_resumes_where_it_was(rig: Any) -> None:
    """Enough customers for ZSCAN to take several steps: stopped after one batch, the next call goes on from the
    saved position (no customer looked at twice) and finishes."""
    app = rig.app
    rig.publish(*(events_for(f"many-{i}")["created"] for i in range(300)))
    total = app.redis.zcard(app.keys.customers)
    app.keyring = ring(f"new={NEW},old={OLD}")
    first = reseal(app, batch=20, max_batches=1)
    assert not first.done and 0 < first.scanned < total
    assert app.redis.hget(app.keys.reseal, "cursor") not in (None, "0")
    updates: list[ResealProgress] = []
    final = reseal(app, batch=50, on_progress=updates.append)
    assert final.done and final.scanned == total and final.total == total
    assert (final.keys, final.documents) == (1, 1)
    assert len(updates) > 2, "progress is reported after every batch"


def test_provisioner_keys_reseal_reports_progress_and_exits_1_on_unopenable(rig: Any, key_prefix: str) -> None:
    s = rig.settings
    env = {
        "REDIS_URL": s.redis_url,
        "PROVISIONER_REDIS_PREFIX": key_prefix,
        "PROVISIONER_STATE_DIR": str(STATE_DIR / key_prefix),
        "PROVISIONER_ENCRYPTION_KEYS": f"new={NEW}",
    }
    refused = CliRunner().invoke(main, ["keys", "reseal"], env=env, catch_exceptions=False)
    assert refused.exit_code == 1 and "not in the keyring" in refused.stderr and OLD not in refused.output
    env["PROVISIONER_ENCRYPTION_KEYS"] = f"new={NEW},old={OLD}"
    done = CliRunner().invoke(main, ["keys", "reseal"], env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "2/2 customers looked at" in done.stderr and "done" in done.stdout
