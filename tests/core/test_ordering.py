"""Duplicated and re-ordered events, names taken by others, and funding after a key exists."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal

import pytest

from handlers.records import Evidence
from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for
from tests.core.invariants import check

NEWEST_IPS = ["198.51.101.7", "198.51.101.8"]


@pytest.fixture(scope="module")
def shared_rig(shared_redis_url: str) -> Iterator[Rig]:
    import uuid

    rig = Rig(shared_redis_url, f"t{uuid.uuid4().hex[:10]}")
    yield rig
    for key in rig.app.redis.scan_iter(f"{rig.settings.key_prefix}:*", count=1000):
        rig.app.redis.delete(key)
    rig.close()


@pytest.mark.parametrize("order", list(itertools.permutations(["created", "kyc", "ip", "rotate"])), ids="-".join)
def test_every_order_of_a_customers_events_converges_to_the_same_state(shared_rig: Rig, order) -> None:
    """Each of the 24 orders, each event delivered 3 times, settling after every delivery."""
    rig = shared_rig
    customer = "perm-" + "-".join(order)
    ev = events_for(customer)
    ref = None
    for name in order:
        for _ in range(3):
            (ref,) = rig.publish(ev[name])
            rig.settle(ref)
    assert ref is not None
    assert _check_one(rig, ref, offboarded=False, funded=Decimal(250), ips=NEWEST_IPS) == []
    record = rig.record(ref)
    assert [k.generation for k in record.live_keys] == [1]


@pytest.mark.parametrize(
    "order",
    [p for i, p in enumerate(itertools.permutations(["created", "kyc", "ip", "rotate", "offboard"])) if i % 5 == 0],
    ids="-".join,
)
def test_offboarding_in_any_position_leaves_nothing_behind(shared_rig: Rig, order) -> None:
    """Wherever offboarding lands among the events, the end is: no key, no balance, record closed."""
    rig = shared_rig
    ev = events_for("off-" + "-".join(order))
    ref = None
    for name in order:
        outcome = rig.app.intake.accept(ev[name])
        ref = getattr(outcome, "ref", ref)
        if ref:
            rig.settle(ref)
    record = rig.record(ref)
    assert record.closed_at_ms is not None
    state = rig.state()
    if record.sub_account is not None:
        (sub,) = [s for s in state["subAccounts"] if s["uid"] == record.sub_account.uid]
        assert all(Decimal(v) == 0 for rows in sub["balances"].values() for v in rows.values())
        assert not [k for k in state["apiKeys"] if k["uid"] == sub["uid"] and k["deletedAt"] is None]
    else:
        assert order.index("offboard") < order.index("created")


def _check_one(rig: Rig, ref: str, **kwargs) -> list[str]:
    """check() expects one sub-account on the exchange; narrow the simulator's state to this customer's."""
    record = rig.record(ref)
    full = rig.exchange.state_snapshot
    uid = record.sub_account.uid if record.sub_account else None

    def narrowed():
        state = full()
        return {
            **state,
            "subAccounts": [s for s in state["subAccounts"] if s["uid"] == uid],
            "apiKeys": [k for k in state["apiKeys"] if k["uid"] == uid],
        }

    rig.state = narrowed  # type: ignore[method-assign]
    try:
        return check(rig, ref, **kwargs)
    finally:
        del rig.state


def test_a_name_taken_by_someone_else_does_not_block_onboarding(redis_url: str, key_prefix: str) -> None:
    """Attempt 0's name is taken exchange-wide: the worker lists its own sub-accounts, moves to attempt 1."""
    probe = Rig(redis_url, key_prefix)
    taken = probe.app.policy.naming.account_name("taken-name", 0)
    probe.close()
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(taken_names=frozenset({taken})))
    try:
        ev = events_for("taken-name")
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref)
        (sub,) = rig.state()["subAccounts"]
        assert sub["accountName"] == rig.app.policy.naming.account_name("taken-name", 1)
        assert check(rig, ref, offboarded=False, funded=Decimal(250)) == []
        actions = [e["action"] for e in rig.app.store.journal(ref)]
        assert "name_unavailable" in actions
    finally:
        rig.close()


def test_funding_after_the_key_exists_survives_a_lost_response(redis_url: str, key_prefix: str) -> None:
    """A second approval funds a sub-account whose key is live; its answer is lost: the transfer is settled from the
    exchange's record of it (the ledger, then its history), never from the balance the customer also moves."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("late-funding")
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref)
        second = {
            **ev["kyc"],
            "id": "late-funding-kyc2",
            "occurred_at": "2026-11-18T10:05:00Z",
            "data": {**ev["kyc"]["data"], "funding": [{"currency": "USDT", "amount": "100"}]},
        }
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 1.0}}}})
        rig.publish(second)
        rig.run(ref)
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 0.0}}}})
        rig.settle(ref)
        assert check(rig, ref, offboarded=False, funded=Decimal(350)) == []
        transfers = rig.record(ref).transfers.values()
        assert {t.evidence for t in transfers} == {Evidence.HISTORY}
        actions = [e["action"] for e in rig.app.store.journal(ref)]
        last_accepted = len(actions) - 1 - actions[::-1].index("transfer.accepted")
        assert actions.index("outcome_unknown") < last_accepted
    finally:
        rig.close()
