"""Since 2512718 a proxy-KYC review or rejection plans ``_keys(grant=False)``: live keys are aligned to the newest
whitelist with "only the permissions they hold that are still wanted". When a live key holds *none* of the newest
approval's permissions, that set is empty, and the ``wanted and ...`` guard (an empty set is refused by KuCoin)
skips the key altogether: not even the whitelist is applied, and the withdrawn permissions stay on it."""

from __future__ import annotations

import copy

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for, kyc_documents

pytestmark = pytest.mark.redis

HOUR_MS = 3_600_000
NEW_IPS = ("198.51.101.7", "198.51.101.8")


def test_a_review_never_applies_the_new_whitelist_to_a_key_holding_none_of_the_new_permissions(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: ``PROVISIONER_PROXY_KYC=true``. A customer approved without documents for spot trading
    (``permissions: ["spot"]``) has its key #0, delivered. The upstream moves it to futures: a new
    ``customer.kyc_approved`` with ``permissions: ["futures"]`` carrying the customer's documents (what turning proxy
    KYC on is for), then a ``customer.ip_changed`` (its servers moved: the old addresses must stop working). KuCoin
    rejects the documents (``kyc.rejected``). A day passes.

    What happens: under the review, then the rejection, ``plan`` runs ``_keys(grant=False)``; for key #0 ``wanted``
    is the newest permissions it already holds — ``()`` — and the ``wanted and ...`` guard skips the key: no
    ``UpdateApiKey`` at all. Key #0 keeps ``Spot`` (withdrawn by the newest approval) and the old whitelist, for the
    whole review and for good after the rejection. Nothing is blocked, nothing is told: the customer view says only
    "KYC rejected". A key holding ``["general", "spot"]`` moved to ``["futures"]`` fares the same.

    Why it is wrong: README: ``customer.ip_changed`` → "the live key's whitelist equals the newest list"; the fix of
    adv33 and docs/integration.md (``kyc.rejected``) promise "keys already issued keep being aligned — the newest
    whitelist". A review is meant to hold back *new* access only; here it freezes the withdrawal of an address the
    upstream dropped and of a permission it withdrew — exactly the adv33 failure, for a key whose permissions change
    wholesale.

    Suggested fix: when ``wanted`` is empty the key holds nothing the customer may still use: revoke it
    (``api_key.revoked``, reason e.g. "permissions withdrawn during KYC review") — or, if keeping the customer's
    only key matters more, still apply the newest whitelist with the narrowest set KuCoin accepts that adds nothing
    (e.g. keep its current permissions only when the whitelist differs), and say which in docs/integration.md.

    Likelihood: low (needs a permission set changed with no overlap — spot → futures — while the documents are under
    review or rejected, and an IP change meanwhile); impact: addresses the upstream dropped keep trading access, with
    a permission it withdrew, for as long as the review lasts or for good.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(kyc_review_ms=60_000),
        PROVISIONER_PROXY_KYC="true",
        PROVISIONER_KYC_POLL_SECONDS="30",
    )
    try:
        ev = events_for("kyc-wholesale", funding=())
        ev["kyc"]["data"]["permissions"] = ["spot"]
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]  # approved without documents: key #0
        rig.settle(ref)
        (first,) = [k.api_key for k in rig.record(ref).live_keys]

        documents = copy.deepcopy(ev["kyc"])
        documents["id"] = "kyc-wholesale-with-documents"
        documents["occurred_at"] = "2026-11-18T10:05:00Z"
        documents["data"]["permissions"] = ["futures"]
        documents["data"]["kyc"] = kyc_documents("REJECT")
        moved = {**ev["ip"], "occurred_at": "2026-11-18T10:06:00Z", "data": {"ip_whitelist": list(NEW_IPS)}}
        rig.publish(documents, moved)
        rig.settle(ref, horizon_ms=120_000)  # submitted, polled until KuCoin's verdict
        assert outbound_of(rig, "kyc.rejected"), "precondition: KuCoin rejected the documents"

        for _ in range(24):  # a day of the customer's wake-ups
            rig.clock.advance_ms(HOUR_MS)
            rig.settle(ref, horizon_ms=1_000)

        live = {k["apiKey"]: k for k in rig.state()["apiKeys"] if k.get("deletedAt") is None}
        if first in live:
            held = live[first]
            assert tuple(held["ipWhitelist"]) == NEW_IPS, (
                f"key #0 is still live on the old whitelist {held['ipWhitelist']} a day after customer.ip_changed "
                f"(permissions {held['permissions']}, newest approval asks ['futures']); the customer waits on: "
                f"{rig.run(ref)}"
            )
            assert "Spot" not in held["permissions"], f"key #0 still holds the withdrawn Spot: {held['permissions']}"
        else:  # revoked (nothing it held is wanted any more): the upstream is told
            assert first in {e["api_key"] for e in outbound_of(rig, "api_key.revoked")}
    finally:
        rig.close()
