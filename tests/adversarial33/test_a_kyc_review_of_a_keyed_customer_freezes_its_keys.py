"""With proxy KYC on, ``plan`` puts ``_kyc`` before everything a customer with a sub-account needs: while the newest
approval carrying documents is under review (``Idle("waiting for the KYC review")``) or rejected
(``Idle("KYC rejected")``), ``_keys`` is never asked. The gate is meant to hold back keys and funding until KuCoin
passes the customer; for a customer whose keys are already live (approved before documents were sent, e.g. before
proxy KYC was switched on) it also freezes everything that *takes access away*: a rotated-out key is not revoked when
its grace ends, a ``customer.ip_changed`` never reaches the live keys, a rotation never happens — for the whole
review, and for good after a rejection."""

from __future__ import annotations

import copy

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for, kyc_documents

pytestmark = pytest.mark.redis

HOUR_MS = 3_600_000
NEW_IPS = ("198.51.101.7", "198.51.101.8")


def test_a_rejected_later_kyc_keeps_a_rotated_out_key_live_and_the_old_whitelist_for_good(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: ``PROVISIONER_PROXY_KYC=true`` (grace one hour). A customer approved without documents (approved before
    the broker switched proxy KYC on; or an approval the upstream sent without ``data.kyc``) has its key #0, delivered.
    The upstream asks for a rotation (say key #0 leaked): key #1 is issued, key #0 enters its one-hour grace. Minutes
    later the upstream sends the customer's documents as a new ``customer.kyc_approved`` (what turning proxy KYC on
    is for: getting existing customers KYC'd at KuCoin), and a ``customer.ip_changed`` (its servers moved; the old
    addresses must stop working). KuCoin rejects the documents (``kyc.rejected``). A day passes.

    What happens: the approval with documents is submitted; from then on every plan stops at ``_kyc``: "waiting for
    the KYC review", then "KYC rejected". ``_keys`` is never reached, so key #0 — rotated out, its grace long over —
    stays live at KuCoin, and both live keys keep the old whitelist. The same holds for the whole review (KuCoin's
    review takes hours to days) even when it passes in the end, and for any rotation asked for meanwhile. No step is
    blocked, nothing is dead-lettered: ``customer retry`` has nothing to retry; only new documents (or offboarding)
    move the customer.

    Why it is wrong: the README promises ``customer.ip_changed`` → "the live key's whitelist equals the newest list" and
    ``key_rotation_requested`` → "the old one is revoked after a grace period"; ``kyc.rejected`` says "keys and
    funding *wait* for a new approval" — i.e. no *new* access, not that access already granted can no longer be
    narrowed or withdrawn. A rejected KYC is the last moment to keep a leaked key, or a dropped address, working.

    Suggested fix: let the KYC gate hold back only what grants access — the first key issuance and funding — and
    plan ``_keys``' revocations and updates (and, arguably, rotations of an already-keyed customer) whatever the
    review says; or, at least, run ``_keys`` for a customer that already holds live keys and suppress only
    ``IssueApiKey`` of a customer that never had one.

    Likelihood: low to moderate: needs keys issued before documents were sent (a deployment that turns proxy KYC on
    for its existing customers does exactly that for every one of them), then a rejection, or a rotation or IP
    change during the review; impact: a key the upstream asked to retire, and addresses it asked to drop, keep
    trading access for as long as the review lasts, or for good.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(kyc_review_ms=60_000),
        PROVISIONER_PROXY_KYC="true",
        PROVISIONER_KYC_POLL_SECONDS="30",
        PROVISIONER_ROTATION_GRACE_SECONDS="3600",
    )
    try:
        ev = events_for("kyc-later", funding=())
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]  # approved without documents: key #0
        rig.settle(ref)
        first = rig.record(ref).live_keys[0].api_key
        rig.publish(ev["rotate"])  # occurred 10:03
        rig.settle(ref, horizon_ms=1_000)
        assert len(rig.record(ref).live_keys) == 2, "precondition: key #1 issued, key #0 in its grace"

        documents = copy.deepcopy(ev["kyc"])
        documents["id"] = "kyc-later-with-documents"
        documents["occurred_at"] = "2026-11-18T10:05:00Z"
        documents["data"]["kyc"] = kyc_documents("REJECT")
        moved = {**ev["ip"], "occurred_at": "2026-11-18T10:06:00Z", "data": {"ip_whitelist": list(NEW_IPS)}}
        rig.publish(documents, moved)
        rig.settle(ref, horizon_ms=120_000)  # submitted, polled until KuCoin's verdict
        assert outbound_of(rig, "kyc.rejected"), "precondition: KuCoin rejected the documents"

        for _ in range(24):  # a day of the customer's wake-ups
            rig.clock.advance_ms(HOUR_MS)
            rig.settle(ref, horizon_ms=1_000)

        live = {k["apiKey"]: k for k in rig.state()["apiKeys"] if k.get("deletedAt") is None}
        assert first not in live, (
            f"key #0 was rotated out a day ago (grace one hour) and is still live at KuCoin; "
            f"the customer waits on: {rig.run(ref)}"
        )
        stale = {k: v["ipWhitelist"] for k, v in live.items() if tuple(v["ipWhitelist"]) != NEW_IPS}
        assert not stale, f"live keys at KuCoin still on the old whitelist after customer.ip_changed: {stale}"
    finally:
        rig.close()
