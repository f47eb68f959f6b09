"""The inbound contract refuses bad events with a reason naming the field, and accepts good ones."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from handlers.events import (
    MAX_EVENT_BYTES,
    MAX_PHOTO_BYTES,
    EventRejected,
    IntakePolicy,
    KycApproved,
    parse_event,
    schema,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
POLICY = IntakePolicy(now=NOW, currencies=frozenset({"USDT", "BTC"}))


def kyc(**data: object) -> dict[str, object]:
    base: dict[str, object] = {
        "permissions": ["general", "spot"],
        "ip_whitelist": ["203.0.114.10"],
        "funding": [{"currency": "USDT", "amount": "250"}],
    }
    return {
        "id": "e1",
        "type": "customer.kyc_approved",
        "customer_id": "c-1",
        "occurred_at": "2026-11-22T11:00:00Z",
        "data": {**base, **data},
    }


def reject(raw: object) -> EventRejected:
    with pytest.raises(EventRejected) as info:
        parse_event(raw if isinstance(raw, str | bytes) else json.dumps(raw), POLICY)
    return info.value


def test_a_good_event_parses() -> None:
    event = parse_event(json.dumps(kyc()), POLICY)
    assert isinstance(event, KycApproved)
    assert event.data.funding[0].decimal_amount == 250


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"type": "customer.deleted"}, "type", "unknown"),
        ({"id": "x" * 65}, "id", "at most 64"),
        ({"id": "bad id"}, "id", "A-Z"),
        ({"customer_id": "x" * 65}, "customer_id", "at most 64"),
        ({"customer_id": "naïve"}, "customer_id", "A-Z"),
        ({"customer_id": 42}, "customer_id", "string"),
        ({"occurred_at": "2026-11-22 11:00:00"}, "occurred_at", "RFC 3339"),
        ({"occurred_at": "2026-11-22T11:00:00+02:00"}, "occurred_at", "UTC"),
        ({"occurred_at": "2026-11-23T11:00:00Z"}, "occurred_at", "future"),
        ({"occurred_at": "2019-01-01T00:00:00Z"}, "occurred_at", "older"),
        ({"occurred_at": "2026-02-30T00:00:00Z"}, "occurred_at", "valid"),
        ({"surprise": 1}, "surprise", "unknown field"),
    ],
)
def test_envelope_errors_name_the_field(change: dict[str, object], field: str, words: str) -> None:
    error = reject({**kyc(), **change})
    assert error.field == field
    assert words in error.reason


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"ip_whitelist": [f"203.0.114.{i}" for i in range(21)]}, "data.ip_whitelist", "at most 20"),
        ({"ip_whitelist": []}, "data.ip_whitelist", "at least 1"),
        ({"ip_whitelist": ["10.0.0.300"]}, "data.ip_whitelist.0", "not a valid IP"),
        ({"ip_whitelist": ["10.0.0.0/8"]}, "data.ip_whitelist.0", "not a valid IP"),
        ({"ip_whitelist": ["203.0.114.1", "203.0.114.1"]}, "data.ip_whitelist", "duplicates"),
        ({"permissions": ["withdrawal"]}, "data.permissions.0", "general"),
        ({"permissions": []}, "data.permissions", "at least 1"),
        ({"funding": [{"currency": "USDT", "amount": 250}]}, "data.funding.0.amount", "decimal string"),
        ({"funding": [{"currency": "USDT", "amount": 2.5e2}]}, "data.funding.0.amount", "decimal string"),
        ({"funding": [{"currency": "USDT", "amount": "-5"}]}, "data.funding.0.amount", "positive"),
        ({"funding": [{"currency": "USDT", "amount": "0"}]}, "data.funding.0.amount", "greater than zero"),
        ({"funding": [{"currency": "USDT", "amount": "1e3"}]}, "data.funding.0.amount", "plain"),
        ({"funding": [{"currency": "USDT", "amount": "abc"}]}, "data.funding.0.amount", "plain"),
        ({"funding": [{"currency": "USDT", "amount": "0.000000001"}]}, "data.funding.0.amount", "8 decimals"),
        ({"funding": [{"currency": "DOGE", "amount": "1"}]}, "data.funding.0.currency", "unknown currency"),
        ({"funding": [{"currency": "USDT", "amount": "1", "memo": "x"}]}, "data.funding.0.memo", "unknown field"),
        ({"funding": [{"currency": "USDT", "amount": "1"}] * 11}, "data.funding", "at most 10"),
        ({"kyc": {"first_name": "A"}}, "data.kyc.last_name", "missing"),
    ],
)
def test_data_errors_name_the_field(data: dict[str, object], field: str, words: str) -> None:
    error = reject(kyc(**data))
    assert error.field == field
    assert words in error.reason


def test_not_json_or_not_an_object() -> None:
    assert reject("{nope").field == "$"
    assert "object" in reject("[1, 2]").reason
    assert reject('{"id": NaN, "type": "customer.created"}').field in {"$", "id"}


def test_oversize_event_is_refused_before_parsing() -> None:
    error = reject(json.dumps(kyc(ip_whitelist=["203.0.114.1"] * 5000)))
    assert error.field == "$" or "at most 20" in error.reason


def test_empty_data_events_refuse_any_field() -> None:
    error = reject(
        {
            "id": "e",
            "type": "customer.created",
            "customer_id": "c",
            "occurred_at": "2026-11-22T11:00:00Z",
            "data": {"x": 1},
        }
    )
    assert error.field == "data.x"


def test_published_schema_is_generated_from_the_models() -> None:
    """schema/events.schema.json must equal what the models generate (run `provisioner schema` to refresh)."""
    published = json.loads(Path(__file__).parents[2].joinpath("schema/events.schema.json").read_text())
    assert published == schema()


def test_timestamp_window_is_relative_to_the_clock() -> None:
    late = IntakePolicy(now=NOW + timedelta(days=400), currencies=frozenset({"USDT"}))
    with pytest.raises(EventRejected):
        parse_event(json.dumps(kyc()), late)
    assert parse_event(json.dumps(kyc()), None).id == "e1"


def test_bytes_that_are_not_utf8_are_refused_naming_the_first_bad_byte() -> None:
    error = reject(json.dumps(kyc()).encode().replace(b"c-1", b"c-\xe9"))
    assert (error.field, error.reason) == ("$", "not valid UTF-8: byte 0xE9 at column 65")


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("fd00:ec2::254", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("203.0.113.10", "documentation"),
        ("2001:db8::1", "documentation"),
        ("100.64.0.1", "shared address space"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("2002:7f00:1::", "6to4 address of 127.0.0.1, which is a loopback"),
    ],
)
def test_addresses_a_trading_key_must_never_be_bound_to_are_refused_with_the_reason(address: str, words: str) -> None:
    error = reject(kyc(ip_whitelist=["203.0.114.10", address]))
    assert error.field == "data.ip_whitelist.1"
    assert "cannot be bound to a trading key" in error.reason and words in error.reason


def test_a_zone_index_is_refused_not_passed_on() -> None:
    error = reject(kyc(ip_whitelist=["fe80::1%eth0"]))
    assert (error.field, "zone index" in error.reason) == ("data.ip_whitelist.0", True)


def test_global_addresses_are_accepted_in_their_normal_form() -> None:
    event = parse_event(json.dumps(kyc(ip_whitelist=["203.0.114.10", "2A00:1450::1", "2002:808:808::"])), POLICY)
    assert isinstance(event, KycApproved)
    assert event.data.ip_whitelist == ("203.0.114.10", "2a00:1450::1", "2002:808:808::")


def test_a_stored_event_is_re_read_without_judging_its_addresses_again() -> None:
    """Events accepted before the rule existed stay readable: re-reading (no policy) only parses addresses."""
    assert parse_event(json.dumps(kyc(ip_whitelist=["10.0.0.1"])), None).id == "e1"


def _photo(decoded_bytes: int) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(b"\xff" * decoded_bytes).decode()


def _with_documents(photo: str) -> dict[str, object]:
    documents = {
        "first_name": "Ann",
        "last_name": "Lee",
        "issue_country": "DE",
        "birth_date": "1990-01-01",
        "identity_type": "passport",
        "identity_number": "P1",
        "expire_date": "2099-01-01",
        "face_photo": photo,
    }
    return kyc(kyc=documents)


def test_a_photo_larger_than_kucoin_takes_is_refused_naming_the_photo() -> None:
    """KuCoin takes photos of at most 2 MiB: a larger one would only be refused later, by the exchange."""
    assert isinstance(parse_event(json.dumps(_with_documents(_photo(MAX_PHOTO_BYTES))), POLICY), KycApproved)
    error = reject(_with_documents(_photo(MAX_PHOTO_BYTES + 1)))
    assert error.field == "data.kyc.face_photo"
    assert f"{MAX_PHOTO_BYTES + 1} bytes" in error.reason and f"at most {MAX_PHOTO_BYTES}" in error.reason


def test_the_configured_photo_limit_refuses_a_smaller_photo() -> None:
    small = IntakePolicy(now=NOW, currencies=frozenset({"USDT"}), max_photo_bytes=100_000)
    with pytest.raises(EventRejected) as info:
        parse_event(json.dumps(_with_documents(_photo(100_001))), small)
    assert info.value.field == "data.kyc.face_photo" and "at most 100000 bytes" in info.value.reason
    assert isinstance(parse_event(json.dumps(_with_documents(_photo(100_000))), small), KycApproved)


def test_no_event_the_limits_allow_exceeds_the_event_byte_limit() -> None:
    assert MAX_EVENT_BYTES < 9 * 1024 * 1024, "three photos of 2 MiB, base64, and the rest"
    photo = _photo(MAX_PHOTO_BYTES)
    event = _with_documents(photo)
    event["data"]["kyc"] |= {"front_photo": photo, "backend_photo": photo}  # type: ignore[index]
    assert len(json.dumps(event)) < MAX_EVENT_BYTES
