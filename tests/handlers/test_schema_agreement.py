"""A JSON Schema validator built from schema/events.schema.json accepts exactly what ``parse_event`` accepts.

The validator is ``jsonschema`` (Draft 2020-12) with one change that makes it behave as a Java or Node validator
does: a pattern's ``$`` matches only at the very end (ECMA 262), not also before a final newline (Python's ``re``).
``parse_event`` runs without an intake policy: the clock window and the configured currencies are runtime checks
the schema cannot state. The differences that remain are listed and tested at the end.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import ValidationError

from handlers.events import (
    MAX_EVENT_BYTES,
    MAX_PHOTO_CHARS,
    MAX_PLAIN_EVENT_BYTES,
    EventRejected,
    IntakePolicy,
    parse_event,
    schema,
)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema_: Any) -> Any:
    if isinstance(instance, str) and not re.search(re.sub(r"\$$", r"\\Z", pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})
VALIDATOR = Validator(schema())

BASE: dict[str, Any] = {
    "id": "evt-1",
    "customer_id": "cust-1",
    "occurred_at": "2026-11-30T10:00:00Z",
}
PHOTO = "data:image/png;base64,iVBORw0KGgo="
DOCUMENTS = {
    "first_name": "Ann",
    "last_name": "Lee",
    "issue_country": "DE",
    "birth_date": "1990-01-01",
    "identity_type": "passport",
    "identity_number": "P1",
    "expire_date": "2099-01-01",
    "face_photo": PHOTO,
}
ACCEPTED = [
    {**BASE, "type": "customer.created", "data": {}},
    {**BASE, "type": "customer.key_rotation_requested", "data": {}},
    {**BASE, "type": "customer.offboarded", "data": {}},
    {**BASE, "type": "customer.ip_changed", "data": {"ip_whitelist": ["203.0.114.9", "2001:db9::1"]}},
    {**BASE, "type": "customer.funding_requested", "data": {"funding": [{"currency": "USDT", "amount": "0.5"}]}},
    {
        **BASE,
        "type": "customer.kyc_approved",
        "occurred_at": "2024-02-29T23:59:59.123456789+00:00",
        "data": {
            "permissions": ["general", "spot", "futures"],
            "ip_whitelist": ["::ffff:192.0.3.1"],
            "funding": [
                {"currency": "BTC", "amount": "0.00000001"},
                {"currency": "USDT", "amount": "9999999999999999"},
            ],
            "kyc": {**DOCUMENTS, "front_photo": PHOTO, "backend_photo": None},
        },
    },
]


def _with(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the approval (or ``base``) with ``path`` (dots; ``-`` deletes) set to ``value``."""
    document = copy.deepcopy(base or ACCEPTED[5])
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value == "-":
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return document


REFUSED = [
    _with("id", ""),
    _with("id", "has space"),
    _with("customer_id", "x" * 65),
    _with("type", "customer.deleted"),
    _with("type", "-"),
    _with("extra", 1),
    _with("data.extra", 1),
    _with("occurred_at", "2026-11-30T10:00:00"),
    _with("occurred_at", "2026-11-30T10:00:00+01:00"),
    _with("occurred_at", "2026-11-30 10:00:00Z"),
    _with("occurred_at", "2026-02-29T10:00:00Z"),
    _with("occurred_at", "2026-11-31T10:00:00Z"),
    _with("occurred_at", "2026-11-30T24:00:00Z"),
    _with("occurred_at", "2026-11-30T10:00:60Z"),
    _with("occurred_at", "2026-11-30T10:00:00.1234567890Z"),
    _with("occurred_at", "2026-11-30T10:00:00Z\n"),
    _with("occurred_at", "２０２６-11-30T10:00:00Z"),
    _with("data.funding.0.amount", 1),
    _with("data.funding.0.amount", "0"),
    _with("data.funding.0.amount", "0.000000000"),
    _with("data.funding.0.amount", "01"),
    _with("data.funding.0.amount", "1.123456789"),
    _with("data.funding.0.amount", "1e3"),
    _with("data.funding.0.amount", "-1"),
    _with("data.funding.0.amount", "1\n"),
    _with("data.funding.0.amount", "12345678901234567"),
    _with("data.funding.0.currency", "usdt"),
    _with("data.permissions", ["general", "general"]),
    _with("data.permissions", ["withdrawal"]),
    _with("data.permissions", []),
    _with("data.ip_whitelist", []),
    _with("data.ip_whitelist", ["1.2.3.4"] * 2),
    _with("data.ip_whitelist", [f"10.0.0.{i}" for i in range(21)]),
    _with("data.ip_whitelist", ["256.1.1.1"]),
    _with("data.ip_whitelist", ["01.2.3.4"]),
    _with("data.ip_whitelist", ["1.2.3"]),
    _with("data.ip_whitelist", ["fe80::1%eth0"]),
    _with("data.ip_whitelist", ["1:2:3:4:5:6:7:8:9"]),
    _with("data.ip_whitelist", ["example.com"]),
    _with("data.kyc.birth_date", "1990-1-1"),
    _with("data.kyc.birth_date", "١٩٩٠-01-01"),
    _with("data.kyc.identity_type", "visa"),
    _with("data.kyc.face_photo", "data:image/gif;base64,AAAA"),
    _with("data.kyc.face_photo", "-"),
    _with("data", {}, {**BASE, "type": "customer.funding_requested", "data": {"funding": []}}),
    _with("data", {"funding": []}, {**BASE, "type": "customer.funding_requested", "data": {}}),
]


def _agree(document: Any) -> tuple[bool, bool]:
    try:
        parse_event(json.dumps(document), None)
        ours = True
    except EventRejected:
        ours = False
    return ours, VALIDATOR.is_valid(document)


@pytest.mark.parametrize("document", ACCEPTED, ids=lambda d: d["type"])
def test_both_accept_the_accepted_examples(document: dict[str, Any]) -> None:
    assert _agree(document) == (True, True)


@pytest.mark.parametrize("document", REFUSED, ids=range(len(REFUSED)))
def test_both_refuse_the_refused_examples(document: dict[str, Any]) -> None:
    assert _agree(document) == (False, False)


def _amount_event(amount: str) -> dict[str, Any]:
    return {**BASE, "type": "customer.funding_requested", "data": {"funding": [{"currency": "USDT", "amount": amount}]}}


def _ip_event(address: str) -> dict[str, Any]:
    return {**BASE, "type": "customer.ip_changed", "data": {"ip_whitelist": [address]}}


def _time_event(moment: str) -> dict[str, Any]:
    return {**BASE, "occurred_at": moment, "type": "customer.created", "data": {}}


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789.-+e \n", max_size=24) | st.decimals(allow_nan=False, allow_infinity=False).map(str))
def test_amounts_agree(amount: str) -> None:
    ours, theirs = _agree(_amount_event(amount))
    assert ours == theirs, amount


def _ipv6_texts(value: int) -> list[str]:
    address = ipaddress.IPv6Address(value)
    v4 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    head = address.exploded.rsplit(":", 2)[0]
    return [str(address), address.exploded, str(address).upper(), f"{head}:{v4}", f"::ffff:{v4}", f"::{v4}"]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**128 - 1).map(_ipv6_texts)
    | st.integers(0, 2**32 - 1).map(lambda v: [str(ipaddress.IPv4Address(v))])
    | st.lists(st.text(alphabet="0123456789abcdefABCDEF:.%", min_size=2, max_size=45), min_size=1, max_size=3)
)
def test_ip_addresses_agree(texts: list[str]) -> None:
    for text in texts:
        ours, theirs = _agree(_ip_event(text))
        assert ours == theirs, text


@settings(max_examples=400, deadline=None)
@given(
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z")
    | st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,10})?(Z|\+00:00|\+01:00|z)?\Z")
)
def test_timestamps_agree(moment: str) -> None:
    ours, theirs = _agree(_time_event(moment))
    assert ours == theirs, moment


def test_the_differences_that_remain_are_these() -> None:
    """What the schema cannot say: that two spellings of an IP address are the same address. The byte limits of an
    event never refuse what the schema allows (shown here at the schema's maxima), and the runtime checks (clock
    window, configured currencies, routable IP addresses) are made only with a policy."""
    assert _agree(_with("data.ip_whitelist", ["::1", "0::1"])) == (False, True)
    private = json.dumps(_with("data.ip_whitelist", ["10.0.0.1"], ACCEPTED[3]))
    assert VALIDATOR.is_valid(json.loads(private)) and parse_event(private, None).id == "evt-1"
    with pytest.raises(EventRejected, match="cannot be bound to a trading key"):
        parse_event(private, IntakePolicy(now=datetime(2026, 11, 30, 10, tzinfo=UTC), currencies=frozenset()))
    widest = {
        **ACCEPTED[4],
        "id": "i" * 64,
        "customer_id": "c" * 64,
        "data": {"funding": [{"currency": "U" * 16, "amount": "9" * 16 + ".12345678"}] * 10},
    }
    assert len(json.dumps(widest)) < MAX_PLAIN_EVENT_BYTES
    assert _agree(widest) == (True, True)
    photo = "data:image/jpeg;base64," + "A" * (MAX_PHOTO_CHARS - 23)
    largest = _with(
        "data.kyc",
        {
            **DOCUMENTS,
            "first_name": "F" * 64,
            "last_name": "L" * 64,
            "identity_number": "N" * 64,
            "front_photo": photo,
            "backend_photo": photo,
            "face_photo": photo,
        },
    )
    largest["data"]["ip_whitelist"] = [f"2001:db9::{i:x}" for i in range(20)]
    assert len(json.dumps(largest)) < MAX_EVENT_BYTES
    assert _agree(largest) == (True, True)
