"""A "clientOid duplicated" answer is judged from the ledger only from the *latest* send under that clientOid on
(``_settle_duplicate`` → ``_judge`` with ``first_sent_ms`` of the re-send): the transfer that holds the clientOid was
sent earlier, so its entry is outside the window, the ledger "shows nothing", and the line is burnt and sent under a
new clientOid. ``worker/provisioning/operator.py`` promises that a wrong ``--not-committed`` cannot pay twice on an
exchange that refuses repeats; it does."""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, set_faults, topup
from tests.core.harness import Rig
from worker.provisioning.operator import settle_transfer


def test_a_wrong_not_committed_pays_twice_on_an_exchange_that_refuses_repeats(redis_url: str, key_prefix: str) -> None:
    """No double transfer via settle-transfer: under `reject` a wrong --not-committed is burnt past its duplicate."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "reject", "ledger_context": "none"}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "dup-window")
        set_faults(rig, "transfer", drop=1.0)  # committed, answer lost
        rig.publish(topup("dup-window", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)
        step = "fund:dup-window-topup#0"
        assert [s for s, b in rig.record(ref).blocked.items() if b.manual] == [step]  # the ledger names no order

        # on-call misreads KuCoin's answer; the module promises: "if the operator was wrong, an exchange that
        # deduplicates or refuses repeats still cannot pay twice"
        settle_transfer(rig.app, ref, step, committed=False, who="oncall")
        rig.settle(ref)
        paid = paid_to(rig, uid)
        assert len(paid) == 1, f"paid {len(paid)} times: {[t['clientOid'][:10] for t in paid]}"
    finally:
        rig.close()
