"""Hostile input, thrown at ``publish`` and at the actor directly: every malformed or adversarial event is
refused with a clear reason naming a field; nothing crashes, nothing reaches the exchange, and nothing is
written but the refusal record. Valid events for unknown customers wait; for closed customers, are ignored."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.harness import Rig, events_for
from tests.signed import call_signed
from worker.intake import Refused
from worker.publish import Publisher
from worker.runtime.broker import build_runtime
from worker.runtime.errors import InvalidEvent

GOOD = events_for("hostile")["kyc"]
WEIRD_TEXT = [
    "\u202e",
    "\u200b",
    "іd",
    "💸",
    "\x00",
    "a b",
    "",
    "x" * 65,
    "x" * 100_000,
    '{"type":"customer.offboarded"}',
    "<script>",
    "'; DROP TABLE",
    "\\u0000",
]
BAD_VALUES: list[Any] = [None, True, 0, -1, 1.5, 1e309, [], {}, [1], "", "x" * 100_000]


def at(path: list[str], event: dict[str, Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(event)
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


mutations = st.one_of(
    st.builds(lambda v: at(["id"], GOOD, v), st.sampled_from(WEIRD_TEXT + BAD_VALUES[:6])),
    st.builds(
        lambda v: at(["id"], GOOD, v),
        st.text(min_size=1, max_size=80).filter(
            lambda t: any(not (c.isascii() and (c.isalnum() or c in "._:-")) for c in t) or len(t) > 64
        ),
    ),
    st.builds(lambda v: at(["customer_id"], GOOD, v), st.sampled_from(WEIRD_TEXT + BAD_VALUES[:6])),
    st.builds(
        lambda v: at(["type"], GOOD, v),
        st.sampled_from(
            ["customer.deleted", "CUSTOMER.CREATED", "", None, 7, "customer.created ", "customer.kyc_approved\x00"]
        ),
    ),
    st.builds(
        lambda v: at(["occurred_at"], GOOD, v),
        st.sampled_from(
            [
                "2999-01-01T00:00:00Z",
                "1970-01-01T00:00:00Z",
                "2026-11-18T10:00:00+01:00",
                "2026-11-18",
                "yesterday",
                "2026-13-01T00:00:00Z",
                1795000000,
                None,
            ]
        ),
    ),
    st.builds(
        lambda v: at(["data", "funding"], GOOD, [{"currency": "USDT", "amount": v}]),
        st.sampled_from(
            [
                250,
                250.0,
                1e3,
                "1e3",
                "-5",
                "0",
                "0.000000001",
                "NaN",
                "Infinity",
                " 250",
                "250 ",
                "2,50",
                "",
                None,
                "9" * 40,
                ["250"],
                {"v": 250},
            ]
        ),
    ),
    st.builds(
        lambda v: at(["data", "funding"], GOOD, [{"currency": v, "amount": "1"}]),
        st.sampled_from(["DOGE", "usdt", "", "U$DT", 5, None, "X" * 17]),
    ),
    st.builds(
        lambda v: at(["data", "ip_whitelist"], GOOD, v),
        st.sampled_from(
            [
                [f"10.0.{i // 250}.{i % 250}" for i in range(21)],
                ["999.1.1.1"],
                ["10.0.0.0/8"],
                [""],
                ["localhost"],
                ["1.2.3.4", "1.2.3.4"],
                [],
                "1.2.3.4",
                [1234],
                ["::ffff:1.2.3.4x"],
            ]
        ),
    ),
    st.builds(
        lambda v: at(["data", "permissions"], GOOD, v),
        st.sampled_from([["withdrawal"], ["General"], ["admin"], [], ["spot", "spot"], "spot", None]),
    ),
    st.builds(
        lambda k, v: at(["data", k], GOOD, v),
        st.sampled_from(["surprise", "__proto__", "kyc_doc"]),
        st.sampled_from(BAD_VALUES[:8]),
    ),
    st.builds(
        lambda k: {key: value for key, value in GOOD.items() if key != k},
        st.sampled_from(["id", "type", "customer_id", "occurred_at", "data"]),
    ),
    st.builds(lambda v: at(["data"], GOOD, v), st.sampled_from(BAD_VALUES[:10])),
    st.sampled_from([[], "event", 42, None, [GOOD]]),
)


@pytest.fixture(scope="module")
def rig(shared_redis_url: str) -> Iterator[Rig]:
    rig = Rig(shared_redis_url, f"t{uuid.uuid4().hex[:10]}")
    yield rig
    for key in rig.app.redis.scan_iter(f"{rig.settings.key_prefix}:*", count=1000):
        rig.app.redis.delete(key)
    rig.close()


@pytest.fixture(scope="module")
def publisher(rig: Rig) -> Iterator[tuple[Publisher, Any]]:
    from prometheus_client import CollectorRegistry

    runtime = build_runtime(rig.settings, transport=rig.transport, registry=CollectorRegistry(), clock=rig.clock)
    yield runtime.publisher(), runtime
    runtime.close()


def written_keys(rig: Rig) -> set[str]:
    prefix = rig.settings.key_prefix
    return {k.removeprefix(f"{prefix}:") for k in rig.app.redis.scan_iter(f"{prefix}:*", count=1000)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=mutations)
def test_publish_refuses_hostile_events_and_writes_only_the_refusal(rig: Rig, publisher, event: Any) -> None:
    pub, runtime = publisher
    raw = event
    records = {"refused", "refused:counts", "outbound"}
    before = {k for k in written_keys(rig) - records if not k.endswith(":refusals")}
    outcome = pub.publish(json.dumps(raw) if not isinstance(raw, str) else raw)
    assert isinstance(outcome, Refused), f"accepted: {str(event)[:200]}"
    assert outcome.field and outcome.reason and len(outcome.reason) < 500
    # the refusal record, and for an event naming its customer the refusal kept final for its id (with a TTL)
    after = written_keys(rig) - records
    assert {k for k in after if not k.endswith(":refusals")} == before, "nothing but the refusal record"
    for key in after - before:
        assert 0 < rig.app.redis.ttl(f"{rig.settings.key_prefix}:{key}") <= 30 * 86_400, key
    assert rig.exchange.state_snapshot()["stats"]["requests"] == {}
    assert runtime.broker.client.llen(f"{runtime.broker.namespace}:events") == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=mutations)
def test_the_actor_refuses_hostile_events_itself(rig: Rig, publisher, event: Any) -> None:
    """A signed message that bypassed publish's checks (another publisher, a replay): the actor refuses it, no
    exchange call."""
    _, runtime = publisher
    before = written_keys(rig) - {"refused", "refused:counts", "outbound"}
    with pytest.raises(InvalidEvent) as info:
        call_signed(runtime.actors.handle_event, event, runtime.app.proofs)
    assert info.value.field and info.value.reason
    assert written_keys(rig) - {"refused", "refused:counts", "outbound"} == before
    assert rig.exchange.state_snapshot()["stats"]["requests"] == {}


def test_valid_events_for_unknown_customers_wait_without_calling_the_exchange(rig: Rig, publisher) -> None:
    _, runtime = publisher
    ev = events_for(f"unknown-{uuid.uuid4().hex[:6]}")
    for name in ("kyc", "ip", "rotate"):
        call_signed(runtime.actors.handle_event, ev[name], runtime.app.proofs)
    assert rig.exchange.state_snapshot()["stats"]["requests"] == {}


def test_events_for_an_offboarded_customer_are_ignored_and_reported(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("closed-one")
        (ref,) = rig.publish(ev["created"])
        rig.publish(ev["offboard"])
        rig.settle(ref)
        calls = sum(rig.state()["stats"]["requests"].values())
        outcome = rig.app.intake.accept({**ev["kyc"], "id": "after-close"})
        assert isinstance(outcome, Refused) and outcome.ignored
        rig.settle(ref)
        assert sum(rig.state()["stats"]["requests"].values()) == calls
        assert rig.outbound()[-1]["type"] == "event.ignored"
    finally:
        rig.close()


HOSTILE_KEY = "x\u202e\n\x1b[31m<script>" + "A" * 5000


def test_a_hostile_field_name_is_bounded_and_made_printable_wherever_the_refusal_goes(rig: Rig, publisher) -> None:
    """An unknown field's name is input: in the refusal, the refused stream and the outbound report it appears
    only shortened and as printable ASCII (escapes for the rest)."""
    pub, _ = publisher
    event = at(["data", HOSTILE_KEY], GOOD, 1)
    outcome = pub.publish(json.dumps(event))
    assert isinstance(outcome, Refused) and outcome.reason == "unknown field"
    assert outcome.field.startswith("data.") and len(outcome.field) <= 80
    assert all(" " <= c <= "~" for c in outcome.field), outcome.field
    assert "\\u202e\\n\\x1b[31m<script>AAA" in outcome.field
    _, last = rig.app.redis.xrevrange(rig.app.keys.refused, count=1)[0]
    assert last["field"] == outcome.field
    report = rig.outbound()[-1]
    assert report["field"] == outcome.field


def test_a_reason_never_carries_control_characters_or_unbounded_input(rig: Rig, publisher) -> None:
    pub, _ = publisher
    outcome = pub.publish(json.dumps(at(["data", "ip_whitelist"], GOOD, ["1.2.3.\u202e\n"])))
    assert isinstance(outcome, Refused) and outcome.field == "data.ip_whitelist.0"
    assert all(" " <= c <= "~" for c in outcome.reason), outcome.reason


def test_publish_refusals_of_unreadable_input_keep_their_own_ids(rig: Rig, publisher) -> None:
    """Two different inputs with no readable id are two refusals: their ``event.refused`` ids differ."""
    pub, _ = publisher
    pub.publish(b"\x00first garbage")
    pub.publish(b"\x00second garbage")
    ids = [e["id"] for e in rig.outbound()[-2:]]
    assert ids[0] != ids[1] and all(i.startswith("event.refused:~") and len(i) > 20 for i in ids), ids


def test_the_same_refusal_of_the_same_event_id_for_two_customers_has_two_ids(rig: Rig, publisher) -> None:
    """Event ids are the upstream's, chosen per customer: the same bad event id from two customers is reported
    twice, to each customer, not merged into one."""
    pub, _ = publisher
    for customer in ("twin-a", "twin-b"):
        pub.publish(json.dumps({**GOOD, "id": "evt-same", "customer_id": customer, "occurred_at": "yesterday"}))
    first, second = rig.outbound()[-2:]
    assert (first["customer_id"], second["customer_id"]) == ("twin-a", "twin-b")
    assert first["id"] != second["id"]


def test_a_hostile_event_id_never_reaches_a_dead_letter_whole(rig: Rig, publisher) -> None:
    """Sealed documents that do not open are refused before the event is judged: the id in that refusal is read
    as intake reads ids (short and printable) or left out."""
    _, runtime = publisher
    hostile = "\x1b[2J" + "i" * 100_000
    event = at(["data", "kyc"], at(["id"], GOOD, hostile), {"$envelope": {"alg": "x", "kid": "k", "ct": "AA=="}})
    with pytest.raises(InvalidEvent) as info:
        call_signed(runtime.actors.handle_event, event, runtime.app.proofs)
    assert info.value.field == "data.kyc" and info.value.event_id is None
    assert len(str(info.value)) < 200


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.binary(max_size=200) | st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b'{"id": "\xe9"}']))
)
def test_publish_lines_of_any_bytes_answer_every_line_without_raising(rig: Rig, publisher, lines: list[bytes]) -> None:
    pub, _ = publisher
    results = list(pub.publish_lines([line.replace(b"\n", b" ") for line in lines]))
    assert [r.line for r in results] == [i for i, line in enumerate(lines, 1) if line.replace(b"\n", b" ").strip()]
    assert all(isinstance(r.outcome, Refused) for r in results)
