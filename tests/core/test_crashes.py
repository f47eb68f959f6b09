"""A crash before or after every exchange write, or a response lost after the exchange committed, still ends
with one sub-account, no orphan key, every secret held, and each transfer exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.core.harness import Crash, Rig, events_for
from tests.core.invariants import check

WRITES = [
    ("POST", "/api/v1/broker/nd/account", 1, "create sub-account"),
    ("POST", "/api/v1/broker/nd/account/apikey", 1, "issue first key"),
    ("POST", "/api/v1/broker/nd/account/update-apikey", 1, "update whitelist"),
    ("POST", "/api/v1/broker/nd/account/apikey", 2, "issue rotated key"),
    ("DELETE", "/api/v1/broker/nd/account/apikey", 1, "revoke rotated-out key"),
    ("DELETE", "/api/v1/broker/nd/account/apikey", 2, "revoke on offboarding"),
    ("POST", "/api/v1/broker/nd/transfer", 1, "fund"),
    ("POST", "/api/v1/broker/nd/transfer", 2, "sweep back"),
]


def lifecycle(rig: Rig, customer: str, *, on_crash=None) -> str:
    ev = events_for(customer)
    (ref,) = rig.publish(ev["created"])
    for name in ("kyc", "ip", "rotate"):
        rig.settle(ref, on_crash=on_crash)
        rig.publish(ev[name])
    rig.settle(ref, on_crash=on_crash)
    state = rig.state()
    rig.exchange.credit(state["subAccounts"][0]["uid"], "USDT", "MAIN", "5")
    rig.publish(ev["offboard"])
    rig.settle(ref, on_crash=on_crash)
    return ref


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix)
    yield rig
    rig.close()


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize(("method", "path", "nth", "what"), WRITES, ids=[w[3] for w in WRITES])
def test_crash_around_each_write(rig: Rig, method: str, path: str, nth: int, what: str, when: str) -> None:
    """The process dies just before the request leaves, or just after the exchange committed it."""
    crashes: list[Crash] = []
    rig.transport.crash(method, path, when=when, nth=nth)
    ref = lifecycle(rig, f"crash-{when}-{nth}", on_crash=crashes.append)
    assert len(crashes) == 1, f"the crash at {what} never happened"
    assert check(rig, ref, offboarded=True, funded=Decimal(250), credited=Decimal(5)) == []
    assert operator_verify(rig, f"crash-{when}-{nth}") == [], "`provisioner verify` agrees"


def operator_verify(rig: Rig, customer: str) -> list[object]:
    """What `provisioner verify` says of the customer's whole lifecycle."""
    ev = events_for(customer)
    return list(rig.verify(ev[name] for name in ("created", "kyc", "ip", "rotate", "offboard")))


@pytest.mark.parametrize(
    "endpoint",
    ["add_sub_account", "add_sub_account_api", "modify_sub_account_api", "delete_sub_account_api", "transfer"],
)
@pytest.mark.parametrize("mode", ["dedupe", "reject", "accept"])
def test_commit_then_lost_response(redis_url: str, key_prefix: str, endpoint: str, mode: str) -> None:
    """The first write to ``endpoint`` is committed but its response lost, whatever clientOid semantics apply."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(duplicate_client_oid=mode))
    try:
        rig.exchange.update_config({"faults": {"per_endpoint": {endpoint: {"drop": 1.0}}}})

        def heal_after_first_drop() -> None:
            if rig.state()["stats"]["faults"].get("drop", 0):
                rig.exchange.update_config({"faults": {"per_endpoint": {endpoint: {"drop": 0.0}}}})

        ev = events_for(f"drop-{endpoint}-{mode}")
        (ref,) = rig.publish(ev["created"])
        for name in ("kyc", "ip", "rotate"):
            rig.settle(ref, after_run=heal_after_first_drop)
            rig.publish(ev[name])
        rig.settle(ref, after_run=heal_after_first_drop)
        assert check(rig, ref, offboarded=False, funded=Decimal(250), ips=["198.51.101.7", "198.51.101.8"]) == []
        rig.publish(ev["offboard"])
        rig.settle(ref, after_run=heal_after_first_drop)
        assert check(rig, ref, offboarded=True, funded=Decimal(250)) == []
        assert rig.state()["stats"]["faults"]["drop"] == 1
    finally:
        rig.close()
