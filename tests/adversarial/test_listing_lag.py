"""Listings that lag (``listing_lag_ms``, a simulator switch for eventually consistent Get SubAccount / Get SubAccount
API) longer than the worker's settle delay: a lost create is taken for "never happened" (or a name "taken by
someone else"), leaving a second sub-account or an orphan key whose secret nobody holds. The worker has no setting
for this lag and never looks again."""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import set_faults
from tests.core.harness import Rig, events_for


def test_a_lost_key_issue_under_listing_lag_leaves_an_orphan_key_alive_after_close(
    redis_url: str, key_prefix: str
) -> None:
    """No orphan key: a lost key issue under listing lag leaves a key no one holds, live after the close."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict({"listing_lag_ms": 20_000}))
    try:
        ev = events_for("orphan-key", funding=())
        ref = rig.publish(ev["created"])[0]
        rig.settle(ref)
        set_faults(rig, "add_sub_account_api", drop=1.0)
        rig.publish(ev["kyc"])
        rig.run(ref)
        set_faults(rig, "add_sub_account_api", drop=0.0)
        rig.settle(ref)
        rig.publish(ev["offboard"])
        rig.settle(ref)

        assert rig.record(ref).closed_at_ms is not None
        live = [k for k in rig.state()["apiKeys"] if k["deletedAt"] is None]
        assert live == [], f"the customer is closed, yet keys live on the exchange: {[k['apiKey'] for k in live]}"
    finally:
        rig.close()


def test_a_lost_create_under_listing_lag_makes_a_second_sub_account(redis_url: str, key_prefix: str) -> None:
    """Never two sub-accounts: a lost create under listing lag is taken for a name taken elsewhere; a second is made."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict({"listing_lag_ms": 20_000}))
    try:
        ev = events_for("two-subs", funding=())
        set_faults(rig, "add_sub_account", drop=1.0)
        ref = rig.publish(ev["created"])[0]
        rig.run(ref)
        set_faults(rig, "add_sub_account", drop=0.0)
        rig.settle(ref)
        subs = rig.state()["subAccounts"]
        assert len(subs) == 1, f"{len(subs)} sub-accounts for one customer: {[s['accountName'] for s in subs]}"
    finally:
        rig.close()
