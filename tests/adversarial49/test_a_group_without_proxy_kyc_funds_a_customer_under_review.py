"""While ``PROVISIONER_PROXY_KYC`` is switched on by a rolling deploy, a process still without it funds and keys a
customer whose documents a new process submitted: the review's gate is the process's setting, not the customer's
record, so money leaves the Special Account for a customer KuCoin then rejects.

Scenario: the broker switches proxy KYC on (``PROVISIONER_PROXY_KYC=true``). The processes restarted so far (group
B) have it, the others (group A) do not yet — minutes of overlap in any rollout (and the same the other way when it
is switched off, or the rollout is rolled back). Customer C's ``customer.created`` and ``customer.kyc_approved``
(with documents, 250 USDT) are handled by B: sub-account created, documents submitted to KuCoin, review pending,
the customer due again at the next poll (``PROVISIONER_KYC_POLL_SECONDS``). That wake-up — or any event of C — is
claimed by a scheduler of A.

What happens: A's ``plan`` asks ``_kyc``, which returns ``None`` at once because *this process's*
``policy.proxy_kyc`` is off, although C's record holds a KYC submission still under review (``record.kyc`` stage
SUBMITTED). A sends the 250 USDT and issues C's key (``api_key.issued``, ``funding.completed``). The next run on B
reads the review: REJECT, told ``kyc.rejected`` — after the upstream was told the customer is keyed and funded. The
same gap lets A fund a customer B recorded REJECTED (any later event or wake-up of C on A), and makes every
REJECTED customer fundable once proxy KYC is switched off.

Why it is wrong: the README's contract for proxy KYC is "gate keys and funding on PASS"; the customer's KYC was
submitted under it, yet money moved before the verdict, to a customer then rejected, and the upstream hears
``funding.completed`` and ``api_key.issued`` followed by ``kyc.rejected`` — a contradiction it cannot undo (the
money is on a sub-account of a rejected customer).

Suggested fix: gate on the customer's record, not only on the setting: once ``record.kyc`` holds a submission
(SUBMITTED, PROCESS or REJECT for the newest approval with documents), ``_kyc`` holds back keys and funding whatever
``policy.proxy_kyc`` says (the setting then decides only whether to *submit*); a deployment that really drops proxy
KYC can release the gate deliberately (a ``customer retry`` or a migration). And document the rollout order for
``PROVISIONER_PROXY_KYC`` in the README's settings table.

Likelihood: low to medium: needs the switch to be rolled out while approvals with documents arrive, and the review's
poll to land on an old process (about half of them with two equal groups); impact: funding and a key for a customer
under review or rejected.
"""

from __future__ import annotations

from typing import Any

from handlers.records import KycStage
from tests.adversarial49.helpers import other_group, settle_with
from tests.core.harness import Rig, events_for, kyc_documents
from worker.intake import Accepted


def with_documents(customer: str, first_name: str) -> dict[str, dict[str, Any]]:
    ev = events_for(customer)
    ev["kyc"] = {**ev["kyc"], "data": {**ev["kyc"]["data"], "kyc": kyc_documents(first_name)}}
    return ev


def test_a_group_without_proxy_kyc_funds_a_customer_under_review(redis_url: str, key_prefix: str) -> None:
    old_group = Rig(redis_url, key_prefix, PROVISIONER_PROXY_KYC="false")
    new_group = other_group(old_group, redis_url, key_prefix, PROVISIONER_PROXY_KYC="true")
    try:
        ev = with_documents("rolling-kyc", "REJECT")  # the simulator rejects this first name
        refs = []
        for event in (ev["created"], ev["kyc"]):
            outcome = new_group.intake.accept(event)
            assert isinstance(outcome, Accepted), outcome
            refs.append(outcome.ref)
        ref = refs[0]
        new_group.due.cancel(ref)
        new_group.reconciler.run(ref)  # B: sub-account, documents submitted, waiting for the review
        record = new_group.store.load(ref)
        assert record.kyc is not None and record.kyc.stage in (KycStage.SUBMITTED, KycStage.PROCESS), record.kyc
        assert not record.keys and not record.transfers

        wake = new_group.due.next_due_ms(ref)
        assert wake is not None
        old_group.clock.advance_ms(max(0, wake - int(old_group.clock() * 1000)))
        old_group.app.due.cancel(ref)
        old_group.run(ref)  # the review's poll claimed by a scheduler of A (no proxy KYC yet)

        settle_with(old_group, new_group, ref)  # B reads the review: REJECT
        final = new_group.store.load(ref)
        told = [e["type"] for e in old_group.outbound()]
        paid = [t for t in old_group.state()["transfers"] if t["direction"] == "OUT" and t["status"] != "FAILURE"]
        assert final.kyc is not None and final.kyc.stage is KycStage.REJECT, final.kyc
        assert "kyc.rejected" in told
        assert not paid, (
            f"a customer under review (then rejected) was paid: {[(t['amount'], t['currency']) for t in paid]}"
        )
        assert "api_key.issued" not in told, f"told before the verdict: {told}"
    finally:
        new_group.close()
        old_group.close()
