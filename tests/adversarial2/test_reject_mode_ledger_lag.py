"""Under ``PROVISIONER_CLIENT_OID_BEHAVIOUR=reject`` the transfer settle delay leaves out the ledger's lag
(``worker/bootstrap.py``: ``+ 0 if dedupe/reject``), yet a "clientOid duplicated" answer is settled from the ledger
(``_settle_duplicate``). A ledger lagging within ``PROVISIONER_LEDGER_LAG_MS`` is read before it lists the transfer:
a sound exchange with correct settings sends every lost transfer answer to an operator as "FAILED or processing"."""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Rig


def test_a_lost_answer_under_reject_goes_to_an_operator_on_a_ledger_within_its_bound(
    redis_url: str, key_prefix: str
) -> None:
    """Under dedupe/reject the re-send is the evidence: a ledger lagging within bound sends a paid line to a human."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "reject", "ledger_lag_ms": 20_000}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="reject",
        PROVISIONER_LEDGER_LAG_MS="30000",
        PROVISIONER_LISTING_LAG_MS="0",  # the listings are immediate (the simulator's default)
    )
    try:
        ref, uid = onboard_with_a_key(rig, "reject-lag")
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("reject-lag", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)
        assert len(paid_to(rig, uid)) == 1
        manual = {s: b.reason[:120] for s, b in rig.record(ref).blocked.items() if b.manual}
        assert not manual, f"a paid line on a sound exchange waits for an operator: {manual}"
        assert [e["key"] for e in outbound_of(rig, "funding.completed")] == ["reject-lag-topup#0"]
    finally:
        rig.close()
