"""KYC documents are not kept once the KYC is decided, nor once the customer is offboarded: a superseded approval's
documents (never submitted) go with the submission or the PASS, and every document still held goes with the
offboarding run's first commit (not at the close, which may come much later); a closed customer's personal data is
erased once the retention period has passed."""

from __future__ import annotations

from typing import Any

from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for, kyc_documents


def _approvals(customer: str, first_name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    ev = events_for(customer)
    kyc = ev["kyc"]
    older = {**kyc, "id": f"{kyc['id']}-1", "data": {**kyc["data"], "kyc": kyc_documents(first_name)}}
    later = {**kyc, "id": f"{kyc['id']}-2", "occurred_at": "2026-11-18T10:01:30Z", "data": older["data"]}
    return ev["created"], older, later


def test_a_pass_deletes_the_documents_of_every_approval(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(kyc_review_ms=0), PROVISIONER_PROXY_KYC="true")
    try:
        created, older, later = _approvals("passes", "Alice")
        (ref,) = rig.publish(created, older, later)[:1]
        assert rig.app.redis.hlen(rig.app.keys.docs(ref)) == 2, "both approvals' documents held before the run"
        rig.settle(ref)
        assert rig.state()["kyc"][0]["status"] == "PASS"
        assert rig.app.redis.hlen(rig.app.keys.docs(ref)) == 0, "the superseded approval's documents went too"
    finally:
        rig.close()


def test_a_submission_deletes_the_documents_it_superseded(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(kyc_review_ms=0), PROVISIONER_PROXY_KYC="true")
    try:
        created, older, later = _approvals("rejected", "REJECT")
        (ref,) = rig.publish(created, older, later)[:1]
        rig.settle(ref)
        assert rig.state()["kyc"][0]["status"] == "REJECT"
        assert rig.app.redis.hlen(rig.app.keys.docs(ref)) == 0, "the older approval's documents went with the later"
    finally:
        rig.close()


def test_closing_deletes_documents_never_submitted(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)  # proxy KYC off: documents arrive, nothing submits them
    try:
        created, older, _ = _approvals("never-submitted", "Bea")
        (ref,) = rig.publish(created, older)[:1]
        rig.settle(ref)
        assert rig.app.redis.hlen(rig.app.keys.docs(ref)) == 1, "precondition: documents still held at the close"
        rig.publish(events_for("never-submitted")["offboard"])
        rig.settle(ref)
        record = rig.record(ref)
        assert record is not None and record.closed_at_ms is not None
        assert rig.app.redis.exists(rig.app.keys.docs(ref)) == 0, "no document outlives the customer's close"
    finally:
        rig.close()


def _held(rig: Rig, ref: str) -> set[str]:
    return set(rig.app.store.held_documents(ref))


def _journalled(rig: Rig, ref: str, action: str) -> list[dict[str, Any]]:
    return [line for line in rig.app.store.journal(ref) if line["action"] == action]


def test_offboarding_deletes_documents_never_submitted_before_the_close(redis_url: str, key_prefix: str) -> None:
    """Proxy KYC off: the approval's documents are never submitted. The offboarding run deletes them although it
    cannot close yet (it waits for the exchange to list the revoked key); an approval with documents that arrives
    after the offboard, before the close, has its documents deleted by the run its arrival wakes."""
    rig = Rig(redis_url, key_prefix)
    try:
        created, older, later = _approvals("offboarded-early", "Cleo")
        (ref,) = rig.publish(created, older)[:1]
        rig.settle(ref)
        assert _held(rig, ref) == {older["id"]}, "precondition: the documents are held while the customer is open"
        rig.publish(events_for("offboarded-early")["offboard"])
        report = rig.run(ref)
        assert report is not None and "RevokeApiKey" in report.steps
        assert rig.record(ref).closed_at_ms is None, "precondition: the offboarding has not closed the customer yet"
        assert rig.app.redis.exists(rig.app.keys.docs(ref)) == 0, "documents outlived the offboarding run"
        (deleted,) = _journalled(rig, ref, "kyc.documents_deleted")
        assert deleted["events"] == [older["id"]] and deleted["reason"] == "offboarded"

        rig.publish(later)  # a late approval with documents, between the offboard and the close
        rig.run(ref)
        assert rig.record(ref).closed_at_ms is None
        assert rig.app.redis.exists(rig.app.keys.docs(ref)) == 0, "a late approval's documents were kept"
        assert [d["events"] for d in _journalled(rig, ref, "kyc.documents_deleted")] == [[older["id"]], [later["id"]]]

        rig.settle(ref)
        assert rig.record(ref).closed_at_ms is not None, "the offboarding still closes the customer"
        assert rig.verify([created, older, later, events_for("offboarded-early")["offboard"]]) == []
    finally:
        rig.close()


def test_offboarding_during_a_kyc_review_deletes_the_unsubmitted_documents_and_submits_nothing(
    redis_url: str, key_prefix: str
) -> None:
    """Proxy KYC on: the first approval is submitted and under review; a later approval's documents wait for the
    verdict. Offboarded then (its first balance read turned away by the exchange's rate limit, so the run ends
    before the close), the customer's run deletes them at once and never submits them."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(kyc_review_ms=86_400_000), PROVISIONER_PROXY_KYC="true")
    try:
        created, older, later = _approvals("offboarded-in-review", "Dora")
        (ref,) = rig.publish(created, older)[:1]
        rig.settle(ref, horizon_ms=45_000)  # until it polls the day-long review
        assert [d["event_id"] for d in _journalled(rig, ref, "kyc.submitted")] == [older["id"]]
        rig.publish(later)
        rig.run(ref)
        assert _held(rig, ref) == {later["id"]}, "precondition: the later approval's documents await the verdict"
        rig.publish(events_for("offboarded-in-review")["offboard"])
        rig.transport.turn_away("GET", f"/api/v1/sub-accounts/{rig.record(ref).sub_account.uid}", times=1)
        report = rig.run(ref)
        assert report is not None and report.outcome == "rate_limited" and "SubmitKyc" not in report.steps
        assert rig.record(ref).closed_at_ms is None, "precondition: not closed by this run"
        assert rig.app.redis.exists(rig.app.keys.docs(ref)) == 0, "unsubmitted documents outlived the offboarding"
        rig.settle(ref, horizon_ms=45_000)
        assert rig.record(ref).closed_at_ms is not None
        assert [d["event_id"] for d in _journalled(rig, ref, "kyc.submitted")] == [older["id"]], "submitted again"
    finally:
        rig.close()


def test_the_retention_sweep_erases_a_closed_customer_only_once_its_period_has_passed(
    redis_url: str, key_prefix: str
) -> None:
    from worker.erasure import RetentionSweep

    day = 86_400_000
    rig = Rig(redis_url, key_prefix)
    try:
        ev = {kind: {**e, "id": f"evt-{kind}"} for kind, e in events_for("kept.a.while@example.org").items()}
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        (other,) = rig.publish({**events_for("still-open")["created"], "id": "evt-open"})
        rig.settle(ref)
        rig.settle(other)
        rig.publish(ev["offboard"])
        rig.settle(ref)
        closed_at = rig.record(ref).closed_at_ms
        sweep = RetentionSweep(lambda: rig.app.store, retention_ms=30 * day, lock_ttl_ms=10_000, batch=1)
        assert sweep(closed_at + 30 * day - 1) + sweep(closed_at + 30 * day - 1) == 0, "not yet due"
        assert rig.record(ref).customer_id == "kept.a.while@example.org"
        assert sweep(closed_at + 30 * day) + sweep(closed_at + 30 * day) == 1, "a batch of one walks both customers"
        assert rig.record(ref).customer_id == f"erased:{ref}"
        assert rig.record(other).customer_id == "still-open", "an open customer is never erased"
        assert rig.app.store.journal(ref)[-1]["actor"] == "retention"
    finally:
        rig.close()
