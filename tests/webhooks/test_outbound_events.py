"""What the worker appends to ``{prefix}:outbound``: each customer's events numbered 1, 2, 3, … in stream order,
ids that never depend on the time, and one timestamp format."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.core.harness import Rig, events_for
from worker.store.outbound import OutboundEvent, rfc3339

RFC3339_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix)
    yield rig
    rig.close()


def entries(rig: Rig) -> list[dict[str, Any]]:
    """The stream's raw entries (fields as stored)."""
    return [fields for _, fields in rig.app.redis.xrange(rig.app.keys.outbound)]


def test_rfc3339_has_milliseconds_and_z() -> None:
    assert rfc3339(1_795_000_000_000) == "2026-11-18T11:06:40.000Z"
    assert rfc3339(1_795_000_000_007) == "2026-11-18T11:06:40.007Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"


def test_event_json_puts_the_sequence_after_id_and_type() -> None:
    event = OutboundEvent("x:1", "kyc.passed", {"customer_ref": "c1", "n": [1, 2]})
    assert event.to_json(7) == '{"id":"x:1","type":"kyc.passed","sequence":7,"customer_ref":"c1","n":[1,2]}'
    assert OutboundEvent("x", "t", {}).to_json() == '{"id":"x","type":"t","sequence":null}'
    with pytest.raises(ValueError, match="sequence"):
        OutboundEvent("x", "t", {"sequence": 1})


def test_a_customers_events_are_numbered_in_stream_order_with_no_gap(rig: Rig) -> None:
    """Commits of two customers interleave; each customer's sequence counts 1, 2, 3, … in stream order, and the
    stream fields agree with the JSON the upstream receives."""
    a, b = events_for("seq-a"), events_for("seq-b")
    ref_a, ref_b = rig.publish(a["created"], b["created"])
    rig.settle(ref_a)
    rig.settle(ref_b)
    rig.publish(a["kyc"], b["kyc"], a["ip"])
    rig.settle(ref_b)
    rig.settle(ref_a)
    rig.publish(a["offboard"])
    rig.settle(ref_a)

    rows = entries(rig)
    events = rig.outbound()
    by_ref: dict[str, list[int]] = {}
    for row, event in zip(rows, events, strict=True):
        assert row["ref"] == event["customer_ref"]
        assert row["sequence"] == str(event["sequence"])
        assert row["id"] == event["id"] and row["type"] == event["type"]
        by_ref.setdefault(row["ref"], []).append(event["sequence"])
    assert set(by_ref) == {ref_a, ref_b}
    for numbers in by_ref.values():
        assert numbers == list(range(1, len(numbers) + 1))
    assert len(by_ref[ref_a]) >= 5, "created, issued, funded, updated, revoked, offboarded"


def test_refusals_are_numbered_in_their_customers_sequence(rig: Rig) -> None:
    """A refused event that names a customer we hold (here: its id reused with other content) takes that
    customer's next number; one that names none, or a customer we never stored an event of, has no sequence."""
    ev = events_for("seq-refused")
    (ref,) = rig.publish(ev["created"])
    rig.settle(ref)
    conflict = {**ev["created"], "occurred_at": "2026-11-18T10:30:00Z"}
    rig.app.intake.accept(conflict)
    rig.app.intake.accept("not json at all")
    rig.app.intake.accept({**ev["created"], "customer_id": "never-seen", "occurred_at": "soon"})
    created, refused, anonymous, stranger = rig.outbound()
    assert (created["type"], created["sequence"]) == ("sub_account.created", 1)
    assert (refused["type"], refused["sequence"], refused["customer_ref"]) == ("event.refused", 2, ref)
    assert refused["customer_id"] == "seq-refused" and refused["event_id"] == ev["created"]["id"]
    assert anonymous["sequence"] is None and anonymous["customer_ref"] is None and anonymous["customer_id"] is None
    assert stranger["customer_id"] == "never-seen" and stranger["sequence"] is None, "no key for an unknown customer"


def test_refusal_ids_are_deterministic(rig: Rig) -> None:
    """The same refused input gets the same id however often it comes; another refusal of the same event id, or
    other unreadable input, gets another id. No id contains a time."""
    intake = rig.app.intake
    bad = {"id": "evt-bad-1", "type": "customer.created", "customer_id": "x", "occurred_at": "yesterday"}
    for _ in range(2):
        intake.accept(bad)
        intake.accept(b"\x00garbage")
        rig.clock.advance_ms(5_000)
    intake.accept({**bad, "type": "customer.nonsense"})
    intake.accept(b"\x00other garbage")
    ids = [e["id"] for e in rig.outbound()]
    assert ids[0] == ids[2] and ids[1] == ids[3], "copies of one refusal share its id"
    assert ids[0].startswith("event.refused:evt-bad-1:") and ids[1].startswith("event.refused:~")
    assert len({ids[0], ids[1], ids[4], ids[5]}) == 4
    assert not any(str(int(rig.clock() * 1000))[:8] in i for i in ids)


def test_provisioning_failed_ids_name_the_commit_not_the_time(rig: Rig) -> None:
    """A sweep the exchange refuses (money moved after the balance read) is reported with an id made of the step
    and the record version that blocked it, and a digest of what it says; blocked again after a retry, it is a new
    outcome with a new id."""
    ev = events_for("seq-held")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.settle(ref)
    uid = rig.record(ref).sub_account.uid

    def move_money() -> None:
        rig.exchange.credit(uid, "USDT", "TRADE", "-1")

    rig.transport.after.append(("GET", "/api/v1/sub-accounts/", move_money))
    rig.publish(ev["offboard"])
    rig.settle(ref)
    (first,) = [e for e in rig.outbound() if e["type"] == "provisioning.failed"]
    named = re.fullmatch(rf"provisioning\.failed:{ref}:sweep:v(\d+):[0-9a-f]{{8}}", first["id"])
    assert named and int(named.group(1)) <= rig.record(ref).version
    assert first["step"] == "sweep"

    rig.transport.after.append(("GET", "/api/v1/sub-accounts/", move_money))
    rig.run(ref, retry_blocked=True)
    failures = [e for e in rig.outbound() if e["type"] == "provisioning.failed"]
    assert len(failures) == 2
    again = re.fullmatch(rf"provisioning\.failed:{ref}:sweep:v(\d+):[0-9a-f]{{8}}", failures[1]["id"])
    assert again and int(again.group(1)) > int(named.group(1))


def test_every_timestamp_is_rfc3339_utc_with_milliseconds(rig: Rig) -> None:
    ev = events_for("seq-time")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.settle(ref)
    rig.app.intake.accept("{")
    events = rig.outbound()
    assert len(events) >= 4
    for event in events:
        assert RFC3339_MS.fullmatch(event["occurred_at"]), event
