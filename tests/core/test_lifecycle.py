"""End to end against real Redis and the simulator: each event type takes effect exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.core.harness import Rig, events_for, kyc_documents
from tests.webhooks.keys import DEV_PRIVATE_JWK, open_jwe


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix)
    yield rig
    rig.close()


def live_keys(state: dict) -> list[dict]:
    return [k for k in state["apiKeys"] if k["deletedAt"] is None]


def test_onboarding_creates_one_sub_account_funds_it_and_delivers_a_working_key(rig: Rig) -> None:
    ev = events_for("alice@example.com")
    (ref,) = rig.publish(ev["created"])
    rig.settle(ref)
    rig.publish(ev["kyc"])
    rig.settle(ref)

    state = rig.state()
    assert len(state["subAccounts"]) == 1
    sub = state["subAccounts"][0]
    assert "alice" not in sub["accountName"]
    (key,) = live_keys(state)
    assert key["label"] == "prov-g0000"
    assert sorted(key["permissions"]) == ["General", "Spot"]
    assert key["ipWhitelist"] == ["203.0.114.10"]
    (transfer,) = state["transfers"]
    assert (transfer["direction"], transfer["amount"], transfer["currency"]) == ("OUT", "250", "USDT")
    assert Decimal(sub["balances"]["TRADE"]["USDT"]) == 250

    kinds = [o["type"] for o in rig.outbound()]
    assert kinds == ["sub_account.created", "api_key.issued", "funding.completed"]  # confirmed once the key is out
    issued = rig.outbound()[1]
    _, creds = open_jwe(issued["credentials"]["jwe"], DEV_PRIVATE_JWK)  # as the upstream, with its private key
    assert set(issued["credentials"]) == {"jwe"}
    assert creds["api_key"] == key["apiKey"]
    assert rig.key_works(creds["api_key"], creds["secret"], creds["passphrase"])

    record = rig.record(ref)
    assert record.pending is None
    held = rig.app.keyring.open(record.keys[0].sealed)
    assert held["secret"] == creds["secret"]


def test_ip_change_rotation_and_offboarding(rig: Rig) -> None:
    ev = events_for("bob")
    (ref,) = rig.publish(ev["created"])
    rig.publish(ev["kyc"])
    rig.settle(ref)
    rig.publish(ev["ip"])
    rig.settle(ref)
    (key,) = live_keys(rig.state())
    assert sorted(key["ipWhitelist"]) == ["198.51.101.7", "198.51.101.8"]

    rig.publish(ev["rotate"])
    rig.settle(ref)  # jumps over the grace period
    state = rig.state()
    (new_key,) = live_keys(state)
    assert new_key["label"] == "prov-g0001"
    assert len(state["apiKeys"]) == 2

    rig.exchange.credit(state["subAccounts"][0]["uid"], "BTC", "MAIN", "0.5")
    rig.publish(ev["offboard"])
    rig.settle(ref)
    state = rig.state()
    assert live_keys(state) == []
    assert all(Decimal(v) == 0 for w in state["subAccounts"][0]["balances"].values() for v in w.values())
    assert rig.record(ref).closed_at_ms is not None
    closed = rig.outbound()[-1]
    assert closed["type"] == "customer.offboarded"
    assert closed["unread_wallets"] == [], "no key of ours could trade futures: every wallet was read"

    late = {**ev["ip"], "id": "bob-late"}
    outcome = rig.app.intake.accept(late)
    assert getattr(outcome, "ignored", False)


def test_a_futures_customer_is_closed_telling_the_futures_wallet_unread(rig: Rig) -> None:
    """The broker API neither reads nor moves a sub-account's futures wallet: a customer whose key could trade
    futures may have left money there. The close says so (``unread_wallets``), so the upstream settles it with
    KuCoin instead of taking ``swept`` for everything the customer held."""
    ev = events_for("futures-trader")
    ev["kyc"]["data"]["permissions"] = ["general", "spot", "futures"]
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.settle(ref)
    rig.publish(ev["offboard"])
    rig.settle(ref)
    closed = rig.outbound()[-1]
    assert closed["type"] == "customer.offboarded"
    assert closed["unread_wallets"] == ["CONTRACT"]
    assert closed["swept"] == {"USDT": "250"}


def test_keys_are_rotated_by_age_without_any_event(rig: Rig) -> None:
    """A key older than PROVISIONER_KEY_MAX_AGE_SECONDS is replaced (new key delivered, old revoked after
    grace) by the wake-up the converged customer scheduled for itself."""
    ev = events_for("aging")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.settle(ref)
    (first,) = live_keys(rig.state())
    max_age_ms = rig.settings.key_max_age_seconds * 1000
    assert rig.app.due.next_due_ms(ref) == rig.record(ref).keys[0].created_at_ms + max_age_ms
    rig.clock.advance_ms(max_age_ms)
    rig.settle(ref)
    (second,) = live_keys(rig.state())
    assert second["label"] == "prov-g0001" and second["apiKey"] != first["apiKey"]
    record = rig.record(ref)
    assert record.age_rotations == 1
    assert [o["type"] for o in rig.outbound()].count("api_key.issued") == 2
    assert "rotation_due_to_age" in [e["action"] for e in rig.app.store.journal(ref)]


def test_proxy_kyc_rejection_issues_no_key_and_reports_the_reason(redis_url: str, key_prefix: str) -> None:
    """With proxy KYC on, documents are submitted; a REJECT stops keys and funding and tells the upstream why;
    the documents are gone once submitted."""
    from sandbox import SandboxConfig

    documents = kyc_documents("REJECT")
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(kyc_review_ms=1000),
        PROVISIONER_PROXY_KYC="true",
        PROVISIONER_KYC_POLL_SECONDS="5",
    )
    try:
        ev = events_for("rejected")
        kyc = {**ev["kyc"], "data": {**ev["kyc"]["data"], "kyc": documents}}
        (ref,) = rig.publish(ev["created"], kyc)[:1]
        rig.settle(ref)
        state = rig.state()
        assert state["kyc"] and state["kyc"][0]["status"] == "REJECT"
        assert live_keys(state) == [] and state["transfers"] == []
        rejected = [o for o in rig.outbound() if o["type"] == "kyc.rejected"]
        assert rejected and rejected[0]["reason"]
        assert rig.app.redis.hlen(rig.app.keys.docs(ref)) == 0, "documents are not kept after submission"
    finally:
        rig.close()
