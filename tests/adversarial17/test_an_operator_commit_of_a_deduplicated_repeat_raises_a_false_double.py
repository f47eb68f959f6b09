"""135112b: a stuck send of a line that may have been sent twice keeps its earlier send (``_stuck`` sets
``earlier_send_ms`` from ``recheck_from_ms``), and the operator's committed entry searches the ledger for a second
payment (``recheck_from_ms``/``recheck_at_ms=now``). The worker's own commit of such a send first asks whether the
order the exchange answered the repeat with is older than the repeat (``confirm_transfer``: ``created_at <
this_send_ms - LEDGER_SKEW_MS`` — a deduplicated repeat, no second payment possible) and drops the search then.
The stuck block keeps no ``sent_ms`` (``this_send_ms``), the operator's entry has none, and ``settle_transfer``,
which reads the order anyway, never compares its ``createdAt``: every operator-settled repeat is searched.

Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown``, an exchange that deduplicates a repeated clientOid (answers
the original orderId; simulator default ``dedupe``), whose ledger entries carry no ids (``ledger_context: none``) and
list 2 minutes late, transfers PROCESSING for two hours. Customer D's 250 USDT line is sent; the answer is lost; the
ledger is silent at the settle delay, so it is sent again under the same clientOid: the exchange answers with the
first order (created two minutes before the repeat). At the hour the block asks the operator; at two hours the order
shows SUCCESS and the on-call answers ``settle-transfer --committed`` as the block says.

What happens: the line is committed, and the recheck, due at once, finds one anonymous debit of 250 it cannot tie
to an order: a ``double:`` block ("cannot tell whether 250 USDT was paid twice") and a ``provisioning.failed`` to the
upstream for a line paid exactly once. The same line with a 10-minute PROCESSING is committed by the worker and
nothing is flagged (checked while writing this test: ``recheck_from_ms`` cleared by the createdAt test).

Why it is wrong: the search exists to make a *possible* double payment loud; here the exchange's own answer proves
there was one transfer (the worker already relies on that proof), yet the upstream is told the customer's
provisioning failed and an operator is paged to acknowledge a non-event — the brief's "cannot wrongly flag a single
payment (a deduplicated repeat under dedupe)".

Suggested fix: carry the stuck send's ``this_send_ms`` into the block's intent (``sent_ms``), and in
``settle_transfer`` (which already reads the order) drop ``earlier_send_ms`` when the order's ``createdAt`` is older
than that send by more than ``LEDGER_SKEW_MS`` — the same test ``confirm_transfer`` applies.

Likelihood: needs a lost answer, a ledger slower than its configured bound (the misconfiguration the search guards
against), a ledger without ids and a transfer PROCESSING over an hour. Rare; the cost is a false failure told to the
upstream and an operator page, not money.
"""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Rig
from worker.provisioning.operator import settle_transfer


def test_an_operator_commit_of_a_deduplicated_repeat_flags_a_single_payment(redis_url: str, key_prefix: str) -> None:
    config = {
        "duplicate_client_oid": "dedupe",
        "ledger_context": "none",
        "ledger_lag_ms": 120_000,
        "transfer_processing_ms": 2 * 3_600_000,
    }
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict(config), PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "dedup")
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("dedup", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        for _ in range(4):
            rig.settle(ref)
            rig.clock.advance_ms(20 * 60_000)
        record = rig.record(ref)
        step = "fund:dedup-topup#0"
        blocked = record.blocked.get(step)
        assert blocked is not None and blocked.manual and blocked.intent is not None, record.blocked
        assert blocked.intent.details.earlier_send_ms  # type: ignore[union-attr]
        rig.clock.advance_ms(2 * 3_600_000)
        orders = [t for t in rig.state()["transfers"] if t["specialUid"] == uid and t["direction"] == "OUT"]
        assert len(orders) == 1 and orders[0]["status"] == "SUCCESS", orders  # deduplicated: one transfer
        settle_transfer(rig.app, ref, step, committed=True, who="oncall", note="KuCoin: SUCCESS")
        for _ in range(6):
            rig.settle(ref)
            rig.clock.advance_ms(30 * 60_000)

        assert len(paid_to(rig, uid)) == 1
        flagged = [s for s in rig.record(ref).blocked if str(s).startswith("double")] + [
            e["step"] for e in outbound_of(rig, "provisioning.failed") if str(e["step"]).startswith("double")
        ]
        assert not flagged, f"one transfer of 250 USDT (a deduplicated repeat), flagged as a possible double: {flagged}"
    finally:
        rig.close()
