"""A line sent again while an earlier send of it may have gone through is searched for a second payment
(``recheck_transfer``, scheduled by ``_commit`` from ``TransferRecord.recheck_from_ms``): README "Settings the
exchange contradicts" — a wrong clientOid setting or a ledger slower than its bound pays twice, but "is never
silent". When that re-send stays PROCESSING past ``PROCESSING_LIMIT_MS``, ``_stuck`` turns the entry into a block
whose intent keeps neither ``recheck_from_ms`` nor ``earlier_send_ms``; the operator's verdict (d4753ac makes it the
only one: ``--committed`` once the order shows SUCCESS) builds a fresh ``TransferRecord`` without them.

Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown``, an exchange that executes a repeated clientOid again
(``accept``) and whose ledger lists an entry after 2 minutes (longer than ``PROVISIONER_LEDGER_LAG_MS`` = 30 s: the
wrong setting this search exists for), transfers PROCESSING for two hours. Customer S's 250 USDT top-up is sent; the
answer is lost. After the settle delay the ledger does not list it yet: not committed, sent again under the same
clientOid — a second transfer. The re-send stays PROCESSING; at the hour it is blocked for an operator; at two hours
it shows SUCCESS and the on-call answers ``settle-transfer --committed --order-id <it>``, as the block asks.

What happens: the line is committed; no search for a second payment is ever made. The sub-account was paid 500 USDT
for a 250 line; nothing is flagged, the exchange stays trusted (re-sends keep being judged on the ledger's silence).

Why it is wrong: the same line with a 10-minute PROCESSING is flagged (a ``double:`` block; checked while writing
this test, as in ``tests/adversarial/test_wrong_settings.py``);
the operator's verdict is about *this* order only, not about whether an earlier send paid too.

Suggested fix: carry ``recheck_from_ms`` (or ``earlier_send_ms``) into the stuck block's intent and give the
operator's committed entry ``recheck_from_ms`` and ``recheck_at_ms`` (as ``_commit`` does), so the search runs.

Likelihood: needs the misconfiguration the search guards against plus a transfer PROCESSING over an hour; rare, but
then a double payment goes silent — the one thing the search promises not to allow.
"""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Rig
from worker.provisioning.operator import settle_transfer


def test_a_stuck_resend_settled_by_an_operator_pays_twice_silently(redis_url: str, key_prefix: str) -> None:
    config = {
        "duplicate_client_oid": "accept",
        "ledger_context": "client_oid",
        "ledger_lag_ms": 120_000,
        "transfer_processing_ms": 2 * 3_600_000,
    }
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict(config), PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "stuck-twice")
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("stuck-twice", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        for _ in range(4):
            rig.settle(ref)
            rig.clock.advance_ms(20 * 60_000)
        record = rig.record(ref)
        step = "fund:stuck-twice-topup#0"
        assert step in record.blocked and record.blocked[step].manual, record.blocked
        rig.clock.advance_ms(2 * 3_600_000)
        orders = [t for t in rig.state()["transfers"] if t["specialUid"] == uid and t["direction"] == "OUT"]
        assert len(orders) == 2 and all(t["status"] == "SUCCESS" for t in orders), orders
        blocked_order = record.blocked[step].intent.details.order_id  # type: ignore[union-attr]
        settle_transfer(rig.app, ref, step, committed=True, order_id=blocked_order, who="oncall", note="SUCCESS")
        for _ in range(6):
            rig.settle(ref)
            rig.clock.advance_ms(30 * 60_000)

        paid = paid_to(rig, uid)
        # a block for the second payment, or its provisioning.failed (the stuck transfer's own block is not one)
        flagged = any(str(s).startswith("double") for s in rig.record(ref).blocked) or any(
            str(e.get("step", "")).startswith("double") for e in outbound_of(rig, "provisioning.failed")
        )
        assert len(paid) == 1 or flagged, f"paid {len(paid)} times for one 250 USDT line, nothing flagged"
    finally:
        rig.close()
