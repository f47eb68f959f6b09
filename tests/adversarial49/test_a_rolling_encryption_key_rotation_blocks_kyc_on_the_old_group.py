"""Rotating ``PROVISIONER_ENCRYPTION_KEYS`` as the README says ("put the new key first on every worker") blocks the
KYC of customers whose documents a new process sealed and an old process then submits: the upstream is told
``provisioning.failed``, the customer is dead-lettered, and only an operator's retry moves it on.

Scenario: ``PROVISIONER_PROXY_KYC=true``. A rolling deploy puts ``new=...,old=...`` on the processes restarted so far
(group B) while the others still run with ``old=...`` (group A) — "put the new key first on every worker" cannot
happen on every worker at once. Customer C's ``customer.created`` is handled by A (sub-account created); its
``customer.kyc_approved`` with documents reaches a process of B, whose intake re-seals the documents under ``new``
and stores the event. The reconcile that follows runs on A: the event's own run found the customer busy (A was
still in C's run: dirty flag, A plans again before releasing), or the customer's next wake-up was claimed by A's
scheduler.

What happens: A plans ``SubmitKyc``; ``kyc_steps.submit_kyc`` sees ``keyring.holds('new')`` false and blocks the
KYC step for good ("sealed under encryption key 'new', which PROVISIONER_ENCRYPTION_KEYS no longer holds: list that
key again ..."), reports ``provisioning.failed`` to the upstream and dead-letters the run. Nothing retries it when
the rollout finishes: a blocked step waits for ``provisioner customer retry`` or ``dlq replay``.

Why it is wrong: the key was never dropped — it is simply not on this process *yet*. The documented rotation
procedure, performed as every rollout performs it, turns a transient state into a permanent block and tells the
upstream the customer failed (while the key, its funding and the KYC wait). The block's text sends the operator
after a "dropped" key that nobody dropped.

Suggested fix: tell "a key id this process does not hold" apart from "a key the deployment dropped": treat an unknown
key id as retryable (another process, or this one after its restart, will hold it; block only after, say, the
retry budget or a day), or record the deployment's keyring ids in Redis so a process can see that a newer
keyring exists. And document the two-phase order in the README (add the new key *second* on every worker, then move
it first everywhere, then reseal, then drop), which makes every process able to open what any other seals. The same
order applies to ``PROVISIONER_EVENT_SIGNING_KEYS``, whose "put a new one first everywhere" dead-letters events an
old worker cannot verify (``unauthenticated``) until someone replays them.

Likelihood: medium for deployments with proxy KYC — every rotation of the encryption key done as documented has a
window of minutes in which approvals with documents arrive; each such customer handled by an old process is blocked.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet

from handlers import steps
from tests.adversarial49.helpers import other_group, settle_with
from tests.core.harness import Rig, events_for, kyc_documents
from worker.intake import Accepted

OLD = Fernet.generate_key().decode("ascii")
NEW = Fernet.generate_key().decode("ascii")


def with_documents(customer: str) -> dict[str, dict[str, Any]]:
    ev = events_for(customer)
    ev["kyc"] = {**ev["kyc"], "data": {**ev["kyc"]["data"], "kyc": kyc_documents("Ada")}}
    return ev


def test_a_rolling_encryption_key_rotation_blocks_kyc_on_the_old_group(redis_url: str, key_prefix: str) -> None:
    old_group = Rig(redis_url, key_prefix, PROVISIONER_ENCRYPTION_KEYS=f"old={OLD}", PROVISIONER_PROXY_KYC="true")
    new_group = other_group(
        old_group,
        redis_url,
        key_prefix,
        PROVISIONER_ENCRYPTION_KEYS=f"new={NEW},old={OLD}",
        PROVISIONER_PROXY_KYC="true",
    )
    try:
        ev = with_documents("rolling-seal")
        (ref,) = old_group.publish(ev["created"])
        old_group.settle(ref)
        assert old_group.record(ref).sub_account is not None

        stored = new_group.intake.accept(ev["kyc"])  # a restarted process takes the approval: sealed under "new"
        assert isinstance(stored, Accepted)
        assert {s.key_id for s in [new_group.store.sealed_documents(ref, ev["kyc"]["id"])] if s} == {"new"}

        old_group.run(ref)  # the reconcile that follows lands on a process not restarted yet
        record = old_group.record(ref)
        failed = [e for e in old_group.outbound() if e["type"] == "provisioning.failed"]
        assert steps.KYC not in record.blocked, f"KYC blocked mid-rollout: {record.blocked[steps.KYC].reason}"
        assert not failed, f"the upstream was told the customer failed: {failed}"

        settle_with(old_group, new_group, ref)  # the rollout done: the new processes carry on
        assert new_group.store.load(ref).kyc is not None, "the documents were submitted once every process holds new"
    finally:
        new_group.close()
        old_group.close()
