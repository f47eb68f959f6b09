"""``CustomerRecord.unsent_by_operator`` is cleared only by ``_burn``: after a correct ``--not-committed`` whose
re-send is then accepted, the line keeps the flag for good. Every later send of the line carries
``operator_unsent=True``, which lets ``_settle_duplicate`` burn a clientOid on the ledger's silence. Under ``reject``
that silence is read before the ledger's lag has passed (the settle delay leaves it out), so a later lost answer of
the line is burnt and the line paid twice — with correct settings, a correct operator and no flag."""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Rig
from worker.provisioning.operator import settle_transfer


def test_a_correct_not_committed_leaves_a_flag_that_later_burns_a_paid_clientoid(
    redis_url: str, key_prefix: str
) -> None:
    """No double transfer with correct settings and operator: a stale unsent_by_operator burns a paid clientOid."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "reject", "ledger_lag_ms": 20_000}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="reject",  # true of this exchange
        PROVISIONER_LEDGER_LAG_MS="30000",  # true of this exchange
        PROVISIONER_LISTING_LAG_MS="0",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "stale-flag")
        step = "fund:stale-flag-topup#0"
        # an earlier double elsewhere left the exchange distrusted: the ledger's silence proves nothing for now
        rig.app.state.distrust("test: a double payment of another customer, being dealt with")
        set_faults(rig, "transfer", **{"5xx": 1.0})  # refused before the exchange committed anything
        rig.publish(topup("stale-flag", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", **{"5xx": 0.0})
        rig.settle(ref)
        assert [s for s, b in rig.record(ref).blocked.items() if b.manual] == [step]
        assert paid_to(rig, uid) == []
        rig.app.state.trust()  # `provisioner state trust --yes`: the other double was dealt with
        # KuCoin: no transfer under that clientOid (true). The re-send is accepted, then FAILS.
        settle_transfer(rig.app, ref, step, committed=False, who="oncall", note="KuCoin: no such clientOid")
        rig.exchange.update_config({"transfer_failure_share": 1.0})
        rig.settle(ref)
        rig.exchange.update_config({"transfer_failure_share": 0.0})
        assert step in rig.record(ref).blocked and paid_to(rig, uid) == []
        # the operator's verdict is tied to the clientOid it judged: the line's next attempt is judged afresh
        next_oid = rig.app.policy.naming.funding_client_oid(ref, "stale-flag-topup#0", 1)
        assert next_oid not in rig.record(ref).unsent_by_operator

        # `provisioner customer retry`: the line goes out under its next clientOid; the answer is lost
        set_faults(rig, "transfer", drop=1.0)
        rig.run(ref, retry_blocked=True)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)
        paid = paid_to(rig, uid)
        told = [e["key"] for e in outbound_of(rig, "provisioning.failed") if e["step"].startswith("double:")]
        assert len(paid) == 1 or told, f"paid {len(paid)} times, nothing flagged: {[t['clientOid'][:10] for t in paid]}"
    finally:
        rig.close()
