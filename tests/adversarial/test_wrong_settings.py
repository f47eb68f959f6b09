"""Settings that disagree with the exchange: a wrong ``PROVISIONER_CLIENT_OID_BEHAVIOUR`` or a ledger lag longer than
``PROVISIONER_LEDGER_LAG_MS`` pays twice, and nothing notices although the worker holds what it needs to notice."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Rig


def _lost_answer_once(rig: Rig, customer: str) -> tuple[str, str]:
    ref, uid = onboard_with_a_key(rig, customer)
    set_faults(rig, "transfer", drop=1.0)
    rig.publish(topup(customer, "topup", 5, [("USDT", "250")]))
    rig.run(ref)
    set_faults(rig, "transfer", drop=0.0)
    rig.settle(ref)
    return ref, uid


def _flagged(rig: Rig, ref: str) -> bool:
    record = rig.record(ref)
    return bool(record.blocked) or bool(outbound_of(rig, "provisioning.failed"))


@pytest.mark.parametrize("worker_mode", ["dedupe", "reject"])
def test_a_wrong_client_oid_setting_pays_twice_silently(redis_url: str, key_prefix: str, worker_mode: str) -> None:
    """Wrong clientOid setting not silently catastrophic: dedupe/reject on an accepting exchange pays twice."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(duplicate_client_oid="accept"),
        PROVISIONER_CLIENT_OID_BEHAVIOUR=worker_mode,
    )
    try:
        ref, uid = _lost_answer_once(rig, f"wrong-{worker_mode}")
        paid = paid_to(rig, uid)
        assert len(paid) == 1 or _flagged(rig, ref), f"paid {len(paid)} times, nothing flagged"
    finally:
        rig.close()


def test_a_ledger_slower_than_its_bound_pays_twice_silently(redis_url: str, key_prefix: str) -> None:
    """Wrong ledger-lag bound not silently catastrophic: a lagging ledger says not committed; paid twice, unflagged."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict(
            {"duplicate_client_oid": "accept", "ledger_context": "client_oid", "ledger_lag_ms": 120_000}
        ),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown",
    )
    try:
        ref, uid = _lost_answer_once(rig, "slow-ledger")
        paid = paid_to(rig, uid)
        assert len(paid) == 1 or _flagged(rig, ref), f"paid {len(paid)} times under one clientOid, nothing flagged"
    finally:
        rig.close()
