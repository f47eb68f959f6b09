"""With proxy KYC, a customer's KYC progress (``record.kyc``: submitted, PASS) lives only in Redis. After a loss of
our state the audit rebuilds the sub-account and keys from the exchange, not the KYC status, so the re-published
approval with documents is submitted to KuCoin again — for a sub-account KuCoin already passed."""

from __future__ import annotations

import contextlib
import copy
from datetime import UTC, datetime

import pytest

from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for, kyc_documents
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.provisioning.reconciler import StepsBlocked
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis


def test_after_a_loss_a_passed_kyc_is_submitted_again_and_blocks_the_customer(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: ``PROVISIONER_PROXY_KYC=true``. A customer's approval came with documents; KuCoin passed them; its key
    was issued and its line paid. Redis loses everything; the on-call runs ``provisioner recover``, the upstream
    re-publishes the customer's events (the approval with its documents, as it sent it), the on-call declares it.
    The customer then asks for a top-up (a new line, after the declaration: "just sent").

    What happens: the audit restores the sub-account and the key but not the KYC status (``record.kyc`` is
    ``None``), so ``_kyc`` plans ``SubmitKyc`` for the re-published approval. KuCoin answers that the KYC is already
    submitted (the simulator's documented choice for a resubmission while PASS): a ``PermanentError``, the KYC step
    is blocked and told ``provisioning.failed``. From then on the KYC gate holds back every grant: the top-up is
    never sent (nor a requested rotation, nor the replacement of a key whose secret was lost; the line paid before
    the loss is not even looked for in the ledger: ``record.transfers`` stays empty), and ``customer retry``
    submits again and is refused again — the block cannot be cleared by anything an operator can do.

    Why it is wrong: KuCoin's own record says the customer passed; the worker re-sends personal data to KuCoin that
    it had no need to send (its documents were supposed to be deleted once submitted), and a customer who was fully
    provisioned before the loss is stuck for good. Even where KuCoin accepted a resubmission, the customer would be
    frozen for a new review (hours to days) and could be rejected the second time.

    Suggested fix: make the audit after a loss read KuCoin's KYC status (Get KYC Status, one call for up to 100
    uids) and rebuild ``record.kyc`` from it (PASS/PROCESS/REJECT with its reason), submitting only when KuCoin shows
    none; or, in ``submit_kyc``, treat "already submitted" as the evidence to read the status (as a pending
    ``SUBMIT_KYC`` intent already is) instead of blocking.

    Likelihood: certain for every proxy-KYC customer that passed before a total loss and whose approval the upstream
    re-publishes with its documents; impact: those customers never get another top-up or key.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(kyc_review_ms=60_000),
        PROVISIONER_PROXY_KYC="true",
        PROVISIONER_KYC_POLL_SECONDS="30",
    )
    try:
        ev = events_for("kyc-loss")
        approval = copy.deepcopy(ev["kyc"])
        approval["data"]["kyc"] = kyc_documents("Alice")
        (ref,) = rig.publish(ev["created"], approval)[:1]
        rig.settle(ref, horizon_ms=600_000)
        record = rig.record(ref)
        assert record.kyc is not None and record.kyc.stage.value == "PASS", f"precondition: passed ({record.kyc})"
        assert len(record.live_keys) == 1 and record.transfers, "precondition: keyed and funded"

        rig.clock.advance_ms(60_000)
        lose_everything(rig)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="Redis restarted without persistence")
            redeliver(app, [ev["created"], approval])
            declare_republished(app)
            rig.clock.advance_ms(120_000)
            settle_with(rig, app, ref)
            topup = {
                "id": "kyc-loss-topup",
                "type": "customer.funding_requested",
                "customer_id": ev["created"]["customer_id"],
                # after the declaration: a new line, sent without being looked for first
                "occurred_at": datetime.fromtimestamp(rig.clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data": {"funding": [{"currency": "USDT", "amount": "25"}]},
            }
            redeliver(app, [topup])
            settle_with(rig, app, ref)
            with contextlib.suppress(StepsBlocked):  # the on-call's `provisioner customer retry`
                app.reconciler.run(ref, retry_blocked=True)
            settle_with(rig, app, ref)
            record = app.store.load(ref)
            assert not record.blocked, (
                f"a customer KuCoin passed before the loss is blocked after it, retry or not: {dict(record.blocked)}"
            )
            assert "kyc-loss-topup#0" in record.transfers, f"the top-up was never sent: {record.transfers.keys()}"
        finally:
            app.close()
    finally:
        rig.close()
