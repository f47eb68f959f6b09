"""Under ``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe`` a lost transfer is settled by re-sending it; when the exchange
in fact executes the repeat (the setting is wrong) and that repeat then FAILS, the line's earlier, lost send — which
paid — is never searched for: an operator's retry pays the line again, silently.

Scenario: the setting says ``dedupe`` (the probe was skipped, or KuCoin changed behaviour); the exchange executes a
repeated clientOid again (``accept``). Customer C's top-up of 300 USDT is sent (attempt 0); the exchange executes it
(order O1, SUCCESS) and the answer is lost. After the settle delay ``resolve_transfer`` re-sends it under the same
clientOid, as ``dedupe`` allows; the exchange creates a second order O2 (created after the re-send: no
deduplication), which ends FAILURE (Get Transfer History's documented status for a transfer accepted and then
failed). ``confirm_transfer`` → ``_failed``: the record forgets the transfer (and with it ``recheck_from_ms``, the
only trace that an earlier send may have paid — ``earlier_sends`` is written only on the ledger path), gives back
the day's reservation and blocks ``fund:LINE`` for a retry. On-call runs ``provisioner customer retry``: the line is
sent under attempt 1, pays (O3), is told ``funding.completed``, and nothing searches the ledger for O1.

What happens: 600 USDT moved for a line of 300 (O1 and O3); no ``double:`` block, no ``provisioning.failed`` for it,
the exchange is not distrusted, the daily cap and the per-customer cap count 300.

Why it is wrong: README "Settings the exchange contradicts": "an exchange that executes a repeated clientOid while
PROVISIONER_CLIENT_OID_BEHAVIOUR says dedupe/reject ... the line is paid twice. This is never silent: every transfer
sent while an earlier send of its line may have gone through is searched in the ledger again". Here the lost send
may have gone through (its answer was lost) and the line is sent again twice (the re-send, then the retry), yet
nothing is searched. The contradiction was visible, too: the FAILED order O2 was created after the re-send, so the
exchange did not answer the repeat with the first order.

Suggested fix: in ``_failed`` of a funding line whose entry has ``recheck_from_ms`` (a send that may repeat an
earlier one), keep that moment in ``earlier_sends`` (as ``resolve_transfer``'s ledger path does) so the next send is
rechecked and a refusal asks an operator; and when the failed order was created at or after ``this_send_ms`` under
``dedupe``, treat it as the contradiction it is (``StateGuard.distrust``) and judge the lost send from the ledger
before the line is retried. Keep the day reservations of the earlier send until it is known not to have paid.

Likelihood in production: low — it needs a wrong ``dedupe``/``reject`` setting (what the README's own hedge is
for), a lost answer, and the repeat failing after acceptance; but when it happens the double payment is silent,
which is exactly what the documented safety net promises never to be.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from handlers import steps
from handlers.records import TransferStatus
from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, topup, total
from tests.core.harness import Crash, Rig
from worker.provisioning.operator import TransferVerdict, settle_transfer


def test_a_failed_dedupe_resend_lets_a_retry_pay_the_line_twice_silently(redis_url: str, key_prefix: str) -> None:
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "accept"}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "adv44-dedupe")
        rig.publish(topup("adv44-dedupe", "topup", 30, [("USDT", "300")]))
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="after")
        with pytest.raises(Crash):
            rig.run(ref)  # O1 executed; its answer is lost with the process
        assert total(paid_to(rig, uid)) == 300

        rig.exchange.update_config({"transfer_failure_share": 1.0})  # the repeat is accepted, then fails
        rig.settle(ref)
        record = rig.record(ref)
        line = "adv44-dedupe-topup#0"
        assert steps.fund(line) in record.blocked, record.blocked  # blocked after FAILURE, for a retry
        assert total(paid_to(rig, uid)) == 300

        rig.exchange.update_config({"transfer_failure_share": 0.0})
        rig.run(ref, retry_blocked=True)  # provisioner customer retry
        rig.settle(ref, horizon_ms=24 * 3_600_000)

        record = rig.record(ref)
        paid = total(paid_to(rig, uid))
        flagged = steps.double(line) in record.blocked or any(
            e["type"] == "provisioning.failed" and e.get("step") == steps.double(line) for e in outbound(rig)
        )
        assert paid == 300 or flagged, f"{paid} USDT moved for a line of 300 and nothing flags the second payment"
        assert paid == 300 or record.transfers[line].extra_paid >= 1
        assert paid <= Decimal(300) or rig.app.store.guard.distrust_reason() is not None
    finally:
        rig.close()


@pytest.mark.parametrize("verdict", ["committed", "not_committed"])
def test_the_operators_verdict_on_the_lost_send_settles_the_line_once_or_flags_the_second(
    redis_url: str, key_prefix: str, verdict: str
) -> None:
    """The fix: the line goes to an operator (a manual block that keeps its intent, counted in doubt by the caps).
    ``--committed`` (the ledger shows the lost send): told completed, nothing sent again. ``--not-committed`` (the
    operator is wrong): the line is sent again and its second payment is found and flagged, never silent."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "accept"}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
    )
    try:
        customer = f"adv44-v-{verdict[0]}"
        ref, uid = onboard_with_a_key(rig, customer)
        rig.publish(topup(customer, "topup", 30, [("USDT", "300")]))
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="after")
        with pytest.raises(Crash):
            rig.run(ref)
        rig.exchange.update_config({"transfer_failure_share": 1.0})
        rig.settle(ref)
        rig.exchange.update_config({"transfer_failure_share": 0.0})
        line = f"{customer}-topup#0"
        block = rig.record(ref).blocked[steps.fund(line)]
        assert block.manual and "may have paid" in block.reason, block
        assert line in rig.record(ref).in_doubt(), "counted by the per-customer cap while an operator decides"

        chosen = TransferVerdict.COMMITTED if verdict == "committed" else TransferVerdict.NOT_COMMITTED
        settle_transfer(rig.app, ref, steps.fund(line), verdict=chosen, who="on-call")
        rig.settle(ref, horizon_ms=24 * 3_600_000)
        record = rig.record(ref)
        told = [e["type"] for e in outbound(rig) if e.get("key") == line or e.get("line") == line]
        if verdict == "committed":
            assert total(paid_to(rig, uid)) == 300
            assert record.transfers[line].status is TransferStatus.COMMITTED
        else:
            assert total(paid_to(rig, uid)) == 600, "sent again on the operator's word"
            assert steps.double(line) in record.blocked, "the second payment is found and flagged"
        assert told.count("funding.completed") <= 1, told
    finally:
        rig.close()
