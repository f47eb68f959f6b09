"""After a total loss, the funding outcomes the upstream heard (``provisioner recover --heard``) decide what the
exchange cannot show: refusals, and payments older than its ledger's window. Without them an unpaid line asked for
before the loss waits for an operator; with them a line nobody decided is sent, once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.adversarial.helpers import outbound, paid_to
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import HeardError, live_keys_from_events, outcomes_from_events, read_heard, read_received
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


def _lose(rig: Rig) -> None:
    lose_everything(rig)
    shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)


def test_a_line_nobody_decided_before_the_loss_is_paid_once_when_the_upstream_heard_nothing_of_it(
    redis_url: str, key_prefix: str
) -> None:
    """The approval's line arrived but was never worked before Redis lost everything: the upstream heard of the
    sub-account only, and nothing was waiting for delivery. Given what it heard as complete, the line is looked
    for, found unpaid and sent — once. Not complete (a refusal might have been waiting): an operator decides."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("heard-nothing")
        ref = rig.publish(ev["created"])[0]
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        heard = outbound(rig)
        rig.publish(ev["kyc"])  # accepted, never worked
        _lose(rig)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: lost", heard=outcomes_from_events(heard), heard_complete=True)
            assert report.heard == 0 and report.heard_complete
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            declare_republished(app)  # the on-call, once the upstream has re-published
            settle_with(rig, app, ref)
            assert [t["amount"] for t in paid_to(rig, uid)] == ["250"]
            record = app.store.load(ref)
            assert record is not None and not record.blocked
        finally:
            app.close()
    finally:
        rig.close()


def test_a_key_revoked_just_before_a_total_loss_is_told_revoked_from_the_heard_file(
    redis_url: str, key_prefix: str
) -> None:
    """A rotation issued K1 and, after its grace, deleted K0 at the exchange; ``api_key.revoked`` K0 was waiting for
    delivery when Redis lost everything. Neither the exchange nor the rebuilt record knows K0 any more; the upstream,
    told K0 issued, holds it live — until the audit, given the heard file, tells it K0 is revoked (once)."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("heard-key", funding=())
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        k0 = rig.record(ref).live_keys[0].api_key
        rig.publish(ev["rotate"])
        rig.run(ref)  # K1 issued, K0 live for the grace
        heard = outbound(rig)
        rig.settle(ref)  # the grace passes: K0 deleted, its api_key.revoked not delivered
        live = {k["apiKey"] for k in rig.state()["apiKeys"] if k["deletedAt"] is None}
        assert k0 not in live
        _lose(rig)
        app = second_host(rig, same_host=True)
        try:
            recover(
                app, reason="test: lost", heard=outcomes_from_events(heard), heard_keys=live_keys_from_events(heard)
            )
            redeliver(app, [ev["created"], ev["kyc"], ev["rotate"]])
            declare_republished(app)
            settle_with(rig, app, ref)
            told = heard + outbound(app)
            issued = {e["api_key"] for e in told if e["type"] == "api_key.issued"}
            revoked = [e["api_key"] for e in told if e["type"] == "api_key.revoked"]
            # K1's secret went with the loss: revoked and re-issued, told; K0 told revoked from the heard file
            now_live = {k["apiKey"] for k in rig.state()["apiKeys"] if k["deletedAt"] is None}
            assert issued - set(revoked) == now_live, (sorted(issued), revoked, sorted(now_live))
            assert revoked.count(k0) == 1
        finally:
            app.close()
    finally:
        rig.close()


def test_the_keys_the_upstream_holds_live_are_read_from_the_heard_file(tmp_path: Path) -> None:
    """Issued and not revoked, per customer, in any order; a key event without its customer is named."""
    events = [
        {"type": "api_key.revoked", "customer_ref": "c1", "api_key": "k0"},
        {"type": "api_key.issued", "customer_ref": "c1", "api_key": "k0"},
        {"type": "api_key.issued", "customer_ref": "c1", "api_key": "k1"},
        {"type": "api_key.issued", "customer_ref": "c2", "api_key": "k2"},
        {"type": "funding.completed", "customer_ref": "c2"},
    ]
    path = tmp_path / "heard.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events))
    received, where = read_received(path)
    assert live_keys_from_events(received, where=where) == {"c1": ["k1"], "c2": ["k2"]}
    with pytest.raises(HeardError, match=r"line 2: api_key\.issued without customer_ref"):
        live_keys_from_events([{}, {"type": "api_key.issued", "api_key": "k"}], where="line")


def test_an_incomplete_heard_file_leaves_unmentioned_unpaid_lines_to_an_operator(
    redis_url: str, key_prefix: str
) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("heard-partial")
        ref = rig.publish(ev["created"])[0]
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        heard = outbound(rig)
        rig.publish(ev["kyc"])
        _lose(rig)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: lost", heard=outcomes_from_events(heard))
            assert report.heard == 0 and not report.heard_complete
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            assert paid_to(rig, uid) == []
            record = app.store.load(ref)
            assert record is not None and record.blocked["fund:heard-partial-kyc_approved#0"].manual
        finally:
            app.close()
    finally:
        rig.close()


def test_a_payment_older_than_the_ledger_window_is_never_made_again(redis_url: str, key_prefix: str) -> None:
    """Paid 40 days before the loss: the ledger cannot be searched that far. Heard as completed, the line is
    recorded committed (never sent again, counted by the cap); not heard, an operator decides. Never paid twice."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("heard-old")
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        assert [t["amount"] for t in paid_to(rig, uid)] == ["250"]
        heard = outbound(rig)
        rig.clock.advance_ms(40 * DAY_MS)
        for given in (None, heard):
            _lose(rig)
            app = second_host(rig, same_host=True)
            try:
                recover(app, reason="test: lost", heard=None if given is None else outcomes_from_events(given))
                ref = redeliver(app, [ev["created"], ev["kyc"]])
                declare_republished(app)  # the on-call, once the upstream has re-published
                settle_with(rig, app, ref)
                assert len(paid_to(rig, uid)) == 1
                record = app.store.load(ref)
                assert record is not None
                line = "heard-old-kyc_approved#0"
                if given is None:
                    assert record.blocked[f"fund:{line}"].manual
                else:
                    entry = record.transfers[line]
                    assert entry.status.value == "committed" and entry.evidence is not None
                    assert entry.evidence.value == "upstream" and record.funded("USDT") == 250
                    assert not record.blocked
            finally:
                app.close()
    finally:
        rig.close()


def test_heard_files_are_read_as_received_and_bad_lines_are_named(tmp_path: Path) -> None:
    completed = {
        "id": "funding.completed:r1:k#0",
        "type": "funding.completed",
        "customer_ref": "r1",
        "key": "k#0",
        "currency": "USDT",
        "amount": "250",
        "client_oid": "c1",
        "order_id": "o1",
    }
    refused = {**completed, "type": "funding.refused", "key": "k#1", "reason": "cap", "client_oid": None}
    other = {"type": "api_key.issued", "customer_ref": "r1"}
    lines = tmp_path / "heard.jsonl"
    lines.write_text("\n".join(json.dumps(e) for e in (completed, other, refused)) + "\n\n", encoding="utf-8")
    outcomes = {o.key: o for o in read_heard(lines)}
    assert outcomes["k#0"].verdict == "completed" and outcomes["k#0"].order_id == "o1"
    assert outcomes["k#1"].verdict == "refused" and outcomes["k#1"].reason == "cap"
    array = tmp_path / "heard.json"
    array.write_text(json.dumps([completed, refused]), encoding="utf-8")
    assert len(read_heard(array)) == 2
    # heard both ways (a refusal, then a completion after a retry): the completion wins, never paid again
    both = outcomes_from_events([{**completed, "type": "funding.refused"}, completed])
    assert [o.verdict for o in both] == ["completed"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(completed) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(HeardError, match=r"bad.jsonl:2: not JSON"):
        read_heard(bad)
    with pytest.raises(HeardError, match=r"event 1: funding.completed without amount"):
        outcomes_from_events([{**completed, "amount": None}])
    with pytest.raises(HeardError, match=r"event 1: amount must be a positive number"):
        outcomes_from_events([{**completed, "amount": "-1"}])
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(HeardError, match="cannot be read"):
        read_heard(binary)


def test_a_completion_told_paid_twice_is_marked_paid_again() -> None:
    """A ``provisioning.failed`` of a ``double:<line>`` step (before or after the completion, in any order) marks
    that line's completion paid again; other failures and other lines are not (adv24)."""
    completed = {"type": "funding.completed", "customer_ref": "r1", "key": "e#0", "currency": "USDT", "amount": "400"}
    other = {**completed, "key": "e#1"}
    doubled = {"type": "provisioning.failed", "customer_ref": "r1", "step": "double:e#0", "reason": "paid twice"}
    blocked = {"type": "provisioning.failed", "customer_ref": "r1", "step": "fund:e#1", "reason": "refused"}
    for events in ([doubled, completed, other, blocked], [completed, other, blocked, doubled]):
        by_key = {o.key: o for o in outcomes_from_events(events)}
        assert by_key["e#0"].paid_again is None, "told paid again, without a count"
        assert by_key["e#1"].paid_again == 0
    counted = [completed, doubled, {**doubled, "second_payments": 2}, {**doubled, "second_payments": 1}]
    assert outcomes_from_events(counted)[0].paid_again == 2, "the largest count told (adv25)"
    relayed = [completed, {**doubled, "second_payments": 3.0}]
    assert outcomes_from_events(relayed)[0].paid_again == 3, "an integral number re-encoded as 3.0"
    for junk in (True, -1, 0, "3", 2.5, 10_000):
        assert outcomes_from_events([completed, {**doubled, "second_payments": junk}])[0].paid_again is None


def test_refusals_the_upstream_heard_are_read_for_the_recovery() -> None:
    """``event.refused`` is final for its id: the recovery records it again; a conflict (the stored event answers
    for its id) and a refusal naming no customer we hold are not."""
    from worker.heard import refusals_from_events

    received = [
        {"type": "event.refused", "customer_ref": "c1", "event_id": "e1", "field": "occurred_at", "reason": "late"},
        {"type": "event.refused", "customer_ref": "c1", "event_id": "e2", "field": "id", "reason": "reused"},
        {"type": "event.refused", "customer_ref": None, "event_id": "e3", "field": "$", "reason": "not JSON"},
        {"type": "funding.completed", "customer_ref": "c1", "key": "e4#0"},
        "not an event",
    ]
    assert refusals_from_events(received) == {"c1": {"e1": "occurred_at\nlate"}}  # type: ignore[arg-type]


def test_a_heard_file_named_with_another_secret_is_told_apart() -> None:
    """``recover --heard`` refuses a shell whose naming does not derive the file's refs (it would name every
    customer anew): the refs of events carrying both ids are checked, pseudonymised ones skipped."""
    from handlers.naming import Naming
    from worker.heard import misnamed_refs

    ours, other = Naming("deployment-secret-0123456789abcdef"), Naming("another-secret-0123456789abcdef00")
    staging = Naming("deployment-secret-0123456789abcdef", prefix="stg")
    ref, name = ours.customer_ref("c-1"), ours.account_name("c-1", 0)
    received = [
        {"type": "funding.completed", "customer_id": "c-1", "customer_ref": ref},
        {"type": "sub_account.created", "customer_id": "c-1", "customer_ref": ref, "account_name": name},
        {"type": "api_key.issued", "customer_id": "erased:x", "customer_ref": "cx"},
        {"type": "event.refused", "customer_id": None, "customer_ref": None},
    ]
    assert misnamed_refs(received, ours) == []
    assert misnamed_refs(received, other) == [f"customer_ref {ref}"] * 2
    assert misnamed_refs(received, staging) == [f"account_name {name}"], "another prefix"
    adopted = {"type": "sub_account.created", "customer_id": "c-2", "customer_ref": ours.customer_ref("c-2")}
    assert misnamed_refs([{**adopted, "account_name": "legacy-acct-17"}], ours) == [], "an older system's name"


def test_a_line_heard_blocked_and_nothing_since_leaves_its_customers_outcomes_unknown() -> None:
    """``provisioning.failed`` of ``fund:<line>`` (refused by the exchange, or in doubt past the bound) decides
    nothing, but a customer with such a line heard and no outcome since is not all known (adv59): its unfound lines
    wait for an operator after a loss, as without the file. A later completion or refusal of the line wins."""
    from worker.heard import IN_DOUBT, outcomes_from_events, outcomes_known

    failed = {"type": "provisioning.failed", "customer_ref": "r1", "step": "fund:e1#0", "reason": "in doubt"}
    done = {"type": "funding.completed", "customer_ref": "r1", "key": "e1#0", "currency": "USDT", "amount": "600"}
    [doubt] = outcomes_from_events([failed])
    assert (doubt.verdict, doubt.key) == (IN_DOUBT, "e1#0") and not outcomes_known(True, [doubt])
    [later] = outcomes_from_events([failed, done])
    assert later.verdict == "completed" and outcomes_known(True, [later])
    assert not outcomes_known(False, [later])
