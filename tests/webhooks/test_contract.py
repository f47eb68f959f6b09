"""The published contract (``schema/outbound/*.schema.json``) against what the worker really emits: scenarios that
produce every one of the twelve outbound types, each event validated against its type's schema (which allows no
undocumented field), and each schema's example valid too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for, kyc_documents
from tests.webhooks.keys import key_pair
from worker.crypto import Keyring
from worker.delivery import CredentialSealer, RecipientKey

SCHEMAS = Path(__file__).parents[2] / "schema" / "outbound"
TYPES = {
    "sub_account.created",
    "api_key.issued",
    "api_key.updated",
    "api_key.revoked",
    "funding.completed",
    "funding.refused",
    "kyc.passed",
    "kyc.rejected",
    "customer.offboarded",
    "provisioning.failed",
    "event.refused",
    "event.ignored",
}


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    return schema


def validate(event: dict[str, Any]) -> None:
    schema = schema_of(event["type"])
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(event)


def test_one_schema_per_type_each_with_a_valid_example() -> None:
    assert {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")} == TYPES
    for kind in TYPES:
        (example,) = schema_of(kind)["examples"]
        validate(example)


def test_a_schema_refuses_what_it_does_not_document() -> None:
    (example,) = schema_of("kyc.passed")["examples"]
    for broken in ({**example, "surprise": 1}, {**example, "occurred_at": "2026-11-18T11:06:40+00:00"}):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)
    missing = {k: v for k, v in example.items() if k != "sequence"}
    with pytest.raises(jsonschema.ValidationError):
        validate(missing)


def scenario_events(redis_url: str, key_prefix: str) -> list[dict[str, Any]]:
    """Run the scenarios that produce every outbound type; return what the stream holds."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(kyc_review_ms=1000),
        PROVISIONER_PROXY_KYC="true",
        PROVISIONER_KYC_POLL_SECONDS="5",
    )
    try:
        # a whole lifecycle with proxy KYC passed, a top-up refused by the cap
        ev = events_for("contract-a", funding=(("USDT", "250"), ("USDT", "5000")))
        kyc = {**ev["kyc"], "data": {**ev["kyc"]["data"], "kyc": kyc_documents("Alice")}}
        (ref,) = rig.publish(ev["created"], kyc)[:1]
        rig.settle(ref)
        rig.publish(ev["ip"], ev["rotate"])
        rig.settle(ref)
        rig.publish(ev["offboard"])
        rig.settle(ref)
        rig.app.intake.accept({**ev["ip"], "id": "contract-a-late"})  # after the close: ignored
        rig.app.intake.accept({"id": "contract-bad", "type": "customer.created"})  # refused
        rig.app.intake.accept(b"\xff not even json")  # refused, no id

        # KYC rejected
        other = events_for("contract-b")
        rejected = {**other["kyc"], "data": {**other["kyc"]["data"], "kyc": kyc_documents("REJECT")}}
        (ref_b,) = rig.publish(other["created"], rejected)[:1]
        rig.settle(ref_b)

        # a sweep the exchange refuses (money moved after the balance read): provisioning.failed
        third = events_for("contract-c")
        third_kyc = {**third["kyc"], "data": {**third["kyc"]["data"], "kyc": kyc_documents("Carol")}}
        (ref_c,) = rig.publish(third["created"], third_kyc)[:1]
        rig.settle(ref_c)
        uid = rig.record(ref_c).sub_account.uid
        rig.transport.after.append(
            ("GET", "/api/v1/sub-accounts/", lambda: rig.exchange.credit(uid, "USDT", "TRADE", "-1"))
        )
        rig.publish(third["offboard"])
        rig.settle(ref_c)
        return rig.outbound()
    finally:
        rig.close()


def test_everything_the_worker_emits_matches_the_published_schemas(redis_url: str, key_prefix: str) -> None:
    events = scenario_events(redis_url, key_prefix)
    assert {e["type"] for e in events} == TYPES, "the scenarios produce every type"
    for event in events:
        validate(event)
    assert len({e["id"] for e in events}) == len(events), "no two outcomes share an id"


def test_credentials_while_migrating_match_the_schema() -> None:
    """PROVISIONER_DELIVERY_KEYS and PROVISIONER_DELIVERY_JWK both set: jwe and the legacy token side by side."""
    _, public = key_pair("ec")
    keyring = Keyring.parse("d1=ZGVsaXZlcnkta2V5LW5vdC1mb3ItcHJvZHVjdGlvbiE=", name="x")
    (example,) = schema_of("api_key.issued")["examples"]
    for sealer in (CredentialSealer(RecipientKey.parse(json.dumps(public)), keyring), CredentialSealer(None, keyring)):
        validate({**example, "credentials": sealer.seal({"api_key": "k", "secret": "s", "passphrase": "p"})})
    with pytest.raises(jsonschema.ValidationError):
        validate({**example, "credentials": {"secret": "in the clear"}})
