"""The invariant checker passes a correct end state and catches each kind of violation."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from handlers.records import SealedSecret
from tests.core.harness import Rig, events_for
from worker.exchange.models import AccountType, Direction, Permission
from worker.verify import Violation


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix)
    yield rig
    rig.close()


def run(rig: Rig, *lifecycles: list[dict]) -> list[dict]:
    published = []
    for events in lifecycles:
        for event in events:
            (ref,) = rig.publish(event)
            rig.settle(ref)
            published.append(event)
    return published


def verify(rig: Rig, published: list[dict]) -> list[Violation]:
    return rig.verify(published)


def lifecycle(name: str, *, offboard: bool) -> list[dict]:
    ev = events_for(name)
    return [ev["created"], ev["kyc"], ev["ip"], ev["rotate"]] + ([ev["offboard"]] if offboard else [])


def test_a_correct_end_state_has_no_violations(rig: Rig) -> None:
    never_created = {**events_for("ghost")["kyc"]}
    published = run(rig, lifecycle("v-live", offboard=False), lifecycle("v-gone", offboard=True), [never_created])
    assert verify(rig, published) == []


def test_an_orphan_key_is_caught(rig: Rig) -> None:
    published = run(rig, lifecycle("v-orphan", offboard=False))
    uid = rig.record(rig.app.policy.naming.customer_ref("v-orphan")).sub_account.uid
    rig.app.exchange.api_keys.add(
        uid=uid,
        passphrase="Passphrase123",
        ip_whitelist=["198.51.100.7"],
        permissions=[Permission.SPOT],
        label="prov-g0001",
    )
    found = {v.invariant for v in verify(rig, published)}
    assert "no key without a held secret" in found


def test_a_double_transfer_and_a_stray_transfer_are_caught(rig: Rig) -> None:
    rig.exchange.update_config({"duplicate_client_oid": "accept"})
    published = run(rig, lifecycle("v-double", offboard=False))
    record = rig.record(rig.app.policy.naming.customer_ref("v-double"))
    oid = record.transfers["v-double-kyc_approved#0"].client_oid
    for client_oid in (oid, "someone-elses"):
        rig.app.exchange.transfers.transfer(
            currency="USDT",
            amount=Decimal(250),
            direction=Direction.OUT,
            account_type=AccountType.MAIN,
            special_uid=record.sub_account.uid,
            special_account_type=AccountType.TRADE,
            client_oid=client_oid,
        )
    found = {v.invariant for v in verify(rig, published)}
    assert {"each funding line exactly once", "nothing else transferred"} <= found


def test_a_secret_that_is_not_the_issued_one_is_caught(rig: Rig) -> None:
    published = run(rig, lifecycle("v-secret", offboard=False))
    ref = rig.app.policy.naming.customer_ref("v-secret")
    record = rig.record(ref)
    (key,) = record.live_keys
    wrong = rig.app.keyring.seal({"secret": "not-the-secret", "passphrase": "nope"})
    forged = record.model_copy(
        update={"keys": tuple(k.model_copy(update={"sealed": wrong}) if k is key else k for k in record.keys)}
    )
    rig.app.redis.set(rig.app.keys.record(ref), forged.model_dump_json())
    assert "secret is what the exchange issued" in {v.invariant for v in verify(rig, published)}
    garbage = forged.model_copy(
        update={
            "keys": tuple(
                k.model_copy(update={"sealed": SealedSecret(key_id="dev1", token="gAAAAAbroken")}) for k in forged.keys
            )
        }
    )
    rig.app.redis.set(rig.app.keys.record(ref), garbage.model_dump_json())
    assert "secret decrypts" in {v.invariant for v in verify(rig, published)}


def test_balance_left_after_offboarding_and_a_second_sub_account_are_caught(rig: Rig) -> None:
    published = run(rig, lifecycle("v-left", offboard=True))
    uid = rig.record(rig.app.policy.naming.customer_ref("v-left")).sub_account.uid
    rig.exchange.credit(uid, "USDT", "TRADE", "1")
    assert "offboarded customers hold no balance" in {v.invariant for v in verify(rig, published)}
    rig.app.exchange.sub_accounts.add(account_name=rig.app.policy.naming.account_name("v-left", 1))
    assert "exactly one sub-account" in {v.invariant for v in verify(rig, published)}


def test_a_sub_account_for_a_customer_never_created_is_caught(rig: Rig) -> None:
    published = [events_for("v-never")["kyc"]]
    rig.app.exchange.sub_accounts.add(account_name=rig.app.policy.naming.account_name("v-never", 0))
    assert [v.invariant for v in verify(rig, published)] == ["none for customers never created"]
