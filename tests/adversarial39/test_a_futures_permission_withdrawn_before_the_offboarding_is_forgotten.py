"""312c5d2: ``customer.offboarded`` says ``unread_wallets: ["CONTRACT"]`` "whenever a key we issued held the futures
permission" — but ``close`` looks only at each key's *current* permissions (``lifecycle_steps.close``: ``any(p ==
"futures" for k in record.keys for p in k.permissions)``), and ``update_api_key`` overwrites a key's permissions
in the record. A key that held futures and was narrowed later leaves no trace of it: the close reads every wallet
as read."""

from __future__ import annotations

import pytest

from tests.adversarial.helpers import approval, outbound_of
from tests.core.harness import Rig, events_for

pytestmark = pytest.mark.redis


def test_a_futures_permission_withdrawn_before_the_offboarding_still_tells_the_futures_wallet_unread(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: customer ``fx-1`` is approved with ``general, spot, futures``: its key is issued with the futures
    permission, and the customer moves money into its futures wallet and trades there (the broker API can neither
    read nor move that wallet). Later the upstream withdraws futures (a new ``customer.kyc_approved`` with
    ``general, spot``: a risk decision, a jurisdiction change); the worker narrows the live key (Modify SubAccount
    API) — which does not touch the money already in futures. Then the customer is offboarded.

    What happens: the record's key now says ``general, spot``; the close finds no key "with futures" and tells
    ``customer.offboarded`` with ``unread_wallets: []`` and ``swept`` the spot balances: to the upstream, everything
    the customer held was read and moved back. The futures wallet's money is never mentioned; nobody asks KuCoin.

    Why it is wrong: README known limits / docs/integration.md: ``unread_wallets: ["CONTRACT"]`` "whenever a key we
    issued held the futures permission" — this key did, for weeks. ``customer.offboarded``'s report of what was
    (and was not) read must be honest; a narrowed permission does not move money out of the futures wallet.

    Suggested fix: decide ``unread_wallets`` from every permission a key of ours ever held: keep a sticky
    ``held_futures`` flag on the customer record (set when a key is issued or updated with futures, never cleared),
    or read the journal's ``api_key.issued``/``api_key.updated`` entries at the close.

    Likelihood: medium for a broker that offers futures: withdrawing a permission before (or as part of) an
    offboarding is a natural compliance step (first cut futures, then close the account). Impact: customer money
    left in the futures wallet with the upstream told every wallet was read.
    """
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("fx-1", funding=(("USDT", "250"),))
        ev["kyc"]["data"]["permissions"] = ["general", "spot", "futures"]
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        (key,) = rig.record(ref).live_keys
        assert "futures" in key.permissions, "precondition: the customer's key may trade futures"

        narrowed = approval("fx-1", "kyc-no-futures", 2, [])  # newer: general, spot
        rig.publish(narrowed)
        rig.settle(ref)
        (key,) = rig.record(ref).live_keys
        assert "futures" not in key.permissions, "precondition: the key was narrowed"
        assert outbound_of(rig, "api_key.updated"), "precondition: the upstream was told the key changed"

        rig.publish(ev["offboard"])
        rig.settle(ref)
        (closed,) = outbound_of(rig, "customer.offboarded")
        assert closed["unread_wallets"] == ["CONTRACT"], (
            f"the key held the futures permission until the narrowing; the close says unread_wallets="
            f"{closed['unread_wallets']} and swept={closed['swept']}: the futures wallet is taken as read"
        )
    finally:
        rig.close()
