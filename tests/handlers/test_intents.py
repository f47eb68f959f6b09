"""Intent details: one type per kind, read from and written to records exactly as before they were typed (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from handlers.intents import (
    CreateSubAccountDetails,
    Intent,
    IntentKind,
    IssueKeyDetails,
    RevokeKeyDetails,
    SubmitKycDetails,
    TransferIntent,
    UpdateKeyDetails,
)
from handlers.records import CustomerRecord, NotDone

# Written by the version before the details were typed (``CustomerRecord.model_dump_json`` of commit b3514c6).
_EMPTY = (
    '"blocked":{},"retry_counts":{},"closed_at_ms":null,"events_at_close":[],"audited_epoch":null,"earlier_sends":{},'
    '"keys_listed_at_ms":0,"unsent_by_operator":[],"looked_for":[],"awaiting_republication":[],"adopted_at_ms":null,"recovered_at_ms":null,'
    '"outcomes_heard":false,"redecided":{},"futures_granted":false}'
)
_HEAD = (
    '{"ref":"c1","customer_id":"cust-1","version":0,"sub_account":null,"name_attempt":0,"name_version":1,"keys":[],'
    '"age_rotations":0,"transfers":{},"sweep_round":0,"balances":null,"kyc":null,'
)
STORED_CREATE = (
    _HEAD + '"pending":{"kind":"create_sub_account","token":"nd0a1b","started_at_ms":1000,"details":{"attempt":1,'
    '"refused":"accountName exists","account_limit":true}},' + _EMPTY
)
_TRANSFER_DETAILS = (
    '"purpose":"fund","uid":"226383154","currency":"USDT","amount":"12.50","direction":"OUT","sub_wallet":"TRADE",'
    '"broker_wallet":"MAIN","day":"20261122","days":["20261122"],"last_send_days":["20261122"],"attempt":1,'
    '"first_sent_ms":1700,"sends":1,'
    '"evidence_first":false,"refused":null,"duplicate":{duplicate},"operator_unsent":false,"earlier_send_ms":0,'
    '"twins":0,"sent_ms":0,"order_id":null,"candidates":[]'
)
STORED_TRANSFER = (
    _HEAD
    + '"pending":{"kind":"transfer","token":"oid-1","started_at_ms":1500,"details":{"key":"e-1#0",'
    + _TRANSFER_DETAILS.replace("{duplicate}", "false")
    + '}},"blocked":{"fund:e-0#0":{"reason":"outcome unknown","at_ms":9,"manual":true,"intent":{"kind":"transfer",'
    '"token":"oid-0","started_at_ms":900,"details":{"key":"e-0#0",'
    + _TRANSFER_DETAILS.replace("{duplicate}", "true")
    + '}},"reported":false}},'
    + _EMPTY.removeprefix('"blocked":{},')
)
STORED_INTENTS = [
    '{"kind":"issue_key","token":"prov-g0001","started_at_ms":1100,"details":{"uid":"226383154","generation":1,'
    '"permissions":["General","Spot"],"ip_whitelist":["10.0.0.1"]}}',
    '{"kind":"update_key","token":"key-1","started_at_ms":1200,"details":{"uid":"226383154","label":"prov-g0001",'
    '"permissions":["General"],"ip_whitelist":[]}}',
    '{"kind":"revoke_key","token":"key-0","started_at_ms":1300,"details":{"uid":"226383154","reason":"rotated",'
    '"refused":"key not found"}}',
    '{"kind":"submit_kyc","token":"e-kyc","started_at_ms":1400,"details":{"uid":"226383154","event_id":"e-kyc"}}',
]


def test_a_stored_record_with_a_refused_create_loads_typed_and_writes_the_same_bytes() -> None:
    record = CustomerRecord.model_validate_json(STORED_CREATE)
    assert record.pending is not None
    assert record.pending.details == CreateSubAccountDetails(
        attempt=1, refused="accountName exists", account_limit=True
    )
    assert record.model_dump_json() == STORED_CREATE


def test_a_stored_record_with_transfer_intents_loads_typed_and_writes_the_same_bytes() -> None:
    record = CustomerRecord.model_validate_json(STORED_TRANSFER)
    assert record.pending is not None
    assert TransferIntent.of(record.pending).key == "e-1#0"
    blocked = record.blocked["fund:e-0#0"].intent
    assert blocked is not None and TransferIntent.of(blocked).duplicate
    assert record.model_dump_json() == STORED_TRANSFER


def test_a_transfer_intent_stored_before_last_send_days_loads_with_none() -> None:
    """Records written before ``TransferIntent.last_send_days`` existed: no day is taken for the latest send's own
    (an operator's committed verdict then gives none back: it may only over-count)."""
    old = STORED_TRANSFER.replace(',"last_send_days":["20261122"]', "")
    record = CustomerRecord.model_validate_json(old)
    assert record.pending is not None and TransferIntent.of(record.pending).last_send_days == []


def test_a_transfer_intent_stored_before_its_order_id_field_loads_without_one() -> None:
    """Records written before ``TransferIntent.order_id`` existed (a stuck transfer's block names its order since)."""
    older = STORED_TRANSFER.replace('"order_id":null,', "")
    assert older != STORED_TRANSFER
    record = CustomerRecord.model_validate_json(older)
    assert record.pending is not None and TransferIntent.of(record.pending).order_id is None


@pytest.mark.parametrize("stored", STORED_INTENTS)
def test_every_kind_of_stored_intent_round_trips_byte_for_byte(stored: str) -> None:
    intent = Intent.model_validate_json(stored)
    assert intent.model_dump_json() == stored
    assert Intent.model_validate_json(intent.model_dump_json()) == intent


def test_an_intent_read_without_its_first_moment_starts_there_and_writes_it_only_once_earlier() -> None:
    """``first_at_ms``: absent (records older than the field, or an intent never repeated), the intent's start; a
    repeat (``started_at_ms`` restarted) writes it after the other fields, and reads it back."""
    stored = STORED_INTENTS[1]
    intent = Intent.model_validate_json(stored)
    assert intent.first_at_ms == intent.started_at_ms == 1200
    assert Intent(kind=intent.kind, token="k", started_at_ms=7, details=intent.details).first_at_ms == 7
    repeated = intent.model_copy(update={"started_at_ms": 5000})
    written = repeated.model_dump_json()
    assert written == stored.replace('"started_at_ms":1200', '"started_at_ms":5000')[:-1] + ',"first_at_ms":1200}'
    assert Intent.model_validate_json(written) == repeated
    assert Intent.model_validate(repeated.model_dump(mode="json")).first_at_ms == 1200


def test_a_record_writes_the_write_found_not_done_only_while_it_remembers_one() -> None:
    """``CustomerRecord.not_done``: absent from records older than the field (they load and write the same bytes),
    and from any record that remembers none; set, written last, and read back."""
    record = CustomerRecord.model_validate_json(STORED_CREATE)
    assert record.not_done is None and record.model_dump_json() == STORED_CREATE
    assert "not_done" not in record.model_dump(mode="json")
    undone = NotDone(kind=IntentKind.CREATE_SUB_ACCOUNT, token="nd0a1b", first_at_ms=1000, at_ms=2000)
    remembering = record.model_copy(update={"pending": None, "not_done": undone})
    written = remembering.model_dump_json()
    expected = ',"not_done":{"kind":"create_sub_account","token":"nd0a1b","first_at_ms":1000,"at_ms":2000}}'
    assert written.endswith(expected)
    assert CustomerRecord.model_validate_json(written) == remembering
    assert CustomerRecord.model_validate(remembering.model_dump(mode="json")) == remembering


@pytest.mark.parametrize(
    ("kind", "details", "written"),
    [
        (IntentKind.CREATE_SUB_ACCOUNT, CreateSubAccountDetails(attempt=0), {"attempt": 0}),
        (
            IntentKind.ISSUE_KEY,
            IssueKeyDetails(uid="u", generation=2, permissions=["General"], ip_whitelist=[]),
            {"uid": "u", "generation": 2, "permissions": ["General"], "ip_whitelist": []},
        ),
        (
            IntentKind.UPDATE_KEY,
            UpdateKeyDetails(uid="u", label="l", permissions=[], ip_whitelist=["10.0.0.1"]),
            {"uid": "u", "label": "l", "permissions": [], "ip_whitelist": ["10.0.0.1"]},
        ),
        (IntentKind.REVOKE_KEY, RevokeKeyDetails(uid="u", reason="offboarded"), {"uid": "u", "reason": "offboarded"}),
        (IntentKind.SUBMIT_KYC, SubmitKycDetails(uid="u", event_id="e"), {"uid": "u", "event_id": "e"}),
    ],
)
def test_details_are_written_with_the_fields_given_and_no_defaults(kind, details, written) -> None:
    intent = Intent(kind=kind, token="t", started_at_ms=1, details=details)
    assert intent.model_dump(mode="json")["details"] == written
    assert Intent.model_validate(intent.model_dump(mode="json")) == intent


def test_a_refusal_marked_later_is_written_after_the_fields_it_joins() -> None:
    refused = CreateSubAccountDetails(attempt=3).model_copy(update={"refused": "taken", "account_limit": True})
    assert refused.model_dump_json() == '{"attempt":3,"refused":"taken","account_limit":true}'


def test_a_transfer_intent_older_than_first_sent_ms_starts_from_the_intent() -> None:
    stored = Intent.model_validate_json(STORED_INTENTS[0])  # any intent: only its envelope is reused
    details = TransferIntent.of(
        Intent.model_validate(
            {
                "kind": "transfer",
                "token": "oid",
                "started_at_ms": 4242,
                "details": {
                    "key": "e#0",
                    "purpose": "fund",
                    "uid": "u",
                    "currency": "USDT",
                    "amount": "1",
                    "direction": "OUT",
                    "sub_wallet": "TRADE",
                    "broker_wallet": "MAIN",
                    "day": "20261122",
                },
            }
        )
    )
    assert details.first_sent_ms == 4242
    with pytest.raises(ValueError, match="a issue_key intent has no transfer details"):
        TransferIntent.of(stored)


def test_an_unknown_kind_is_an_error_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="kind: unknown intent kind 'withdraw'"):
        Intent.model_validate({"kind": "withdraw", "token": "t", "started_at_ms": 1, "details": {}})


def test_details_of_another_kind_are_an_error_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="details: a revoke_key intent takes RevokeKeyDetails, not SubmitKyc"):
        Intent(kind=IntentKind.REVOKE_KEY, token="k", started_at_ms=1, details=SubmitKycDetails(uid="u", event_id="e"))
    with pytest.raises(ValidationError, match="details: not those of a issue_key intent") as raised:
        Intent.model_validate({"kind": "issue_key", "token": "t", "started_at_ms": 1, "details": {"uid": "u"}})
    assert "generation" in str(raised.value)


def test_a_record_stored_before_awaiting_republication_existed_loads_with_none() -> None:
    """Records written before the field was added load with no line awaiting the re-publication."""
    older = STORED_CREATE.replace('"awaiting_republication":[],', "")
    assert '"awaiting_republication"' not in older
    assert CustomerRecord.model_validate_json(older).awaiting_republication == ()
