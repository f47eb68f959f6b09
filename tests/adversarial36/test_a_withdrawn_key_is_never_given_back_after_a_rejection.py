"""Since 99ff099 a KYC review revokes a live key holding none of the newest approval's permissions
(``planner._keys(grant=False)``, ``WITHDRAWN_REASON``). If KuCoin then rejects the documents, the gate
(``planner._kyc``) stays shut for as long as the newest approval *that carried documents* is the rejected one
(``desired.kyc_documents_event``): a later approval without documents — the upstream going back to what the
customer had, which needed no KYC — is not "a new approval" for the gate. The customer, who had a working key
before the review, is left with none, for good."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for, kyc_documents

pytestmark = pytest.mark.redis

HOUR_MS = 3_600_000


def test_a_key_revoked_during_a_rejected_review_is_not_given_back_by_a_new_approval(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: ``PROVISIONER_PROXY_KYC=true``. A customer approved without documents for spot (``["spot"]``) holds
    key #0, delivered. The upstream offers it futures: a ``customer.kyc_approved`` with ``["futures"]`` and the
    customer's documents. During the review the key, holding none of ``["futures"]``, is revoked
    (``api_key.revoked``, "none of its permissions is wanted any more, and the new ones wait for the KYC review").
    KuCoin rejects the documents (``kyc.rejected``). The upstream does what docs/integration.md says the rejection
    waits for — a new approval — and sends ``customer.kyc_approved`` with ``["spot"]`` again, without documents
    (what key #0 held, granted before any proxy KYC). A day passes.

    What happens: ``desired.kyc_documents_event`` is still the rejected approval (the newest one *with*
    documents), so ``_kyc`` answers ``Idle("KYC rejected")`` on every wake-up and ``_keys(grant=False)`` issues
    nothing. The customer has no live key; its view stays ``kyc_rejected``; nothing is blocked or reported.

    Why it is wrong: "never a customer stuck". Before the review the customer traded spot with a key that needed no
    KYC; the review took it away (99ff099) and the documented way out — "a new key ... wait(s) for a new approval"
    (docs/integration.md, ``kyc.rejected``) — does not open the gate. Only new documents do, i.e. the customer must
    pass a KYC it does not need for the access it had. (Before 99ff099 key #0 stayed live through the rejection.)

    Suggested fix: let the gate follow the newest approval: an approval without documents that is newer than the
    rejected one (``desired`` knows the order) asks for no proxy KYC, so ``_kyc`` returns None and the wanted key is
    issued; or, failing that, document that only an approval with new documents lifts a rejection, and do not revoke
    a key during a review that may still be rejected (narrow only; revoke on PASS, when its successor is issued).

    Likelihood: low-medium (proxy KYC on, a permission change with no overlap while documents are reviewed, a
    rejection, the upstream rolling back); impact: a customer left without any key indefinitely, silently.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(kyc_review_ms=60_000),
        PROVISIONER_PROXY_KYC="true",
        PROVISIONER_KYC_POLL_SECONDS="30",
    )
    try:
        ev = events_for("kyc-rollback", funding=())
        ev["kyc"]["data"]["permissions"] = ["spot"]
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]  # approved without documents: key #0
        rig.settle(ref)
        (first,) = [k.api_key for k in rig.record(ref).live_keys]

        documents = copy.deepcopy(ev["kyc"])
        documents["id"] = "kyc-rollback-with-documents"
        documents["occurred_at"] = "2026-11-18T10:05:00Z"
        documents["data"]["permissions"] = ["futures"]
        documents["data"]["kyc"] = kyc_documents("REJECT")
        rig.publish(documents)
        rig.settle(ref, horizon_ms=120_000)
        assert outbound_of(rig, "kyc.rejected"), "precondition: KuCoin rejected the documents"
        assert first in {e["api_key"] for e in outbound_of(rig, "api_key.revoked")}, (
            "precondition: key #0 was revoked during the review"
        )

        back = copy.deepcopy(ev["kyc"])
        back["id"] = "kyc-rollback-spot-again"
        back["occurred_at"] = datetime.fromtimestamp(rig.clock.now - 1, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        back["data"]["permissions"] = ["spot"]
        rig.publish(back)
        for _ in range(24):  # a day of the customer's wake-ups
            rig.clock.advance_ms(HOUR_MS)
            rig.settle(ref, horizon_ms=1_000)

        turned_away = [e for e in outbound_of(rig, "event.refused") + outbound_of(rig, "event.ignored")]
        assert not turned_away, f"precondition: the new approval was taken in: {turned_away}"
        live = [k for k in rig.state()["apiKeys"] if k.get("deletedAt") is None]
        assert live, (
            f"a day after a new approval for spot (no documents), the customer has no live key; keys: "
            f"{[(k.api_key, k.permissions, k.revoke_reason) for k in rig.record(ref).keys]}; it waits on: "
            f"{rig.run(ref)}"
        )
    finally:
        rig.close()
