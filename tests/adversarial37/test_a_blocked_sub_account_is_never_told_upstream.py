"""Every blocked step tells the upstream ``provisioning.failed`` (``blocks.fail``, ``hold_offboarding``) — except the
sub-account: ``subaccount_steps`` calls ``ctx.block`` without an outbound event, both for the broker's sub-account
limit (``account_limit_reason``) and for ten refused names. The upstream is never told that its customer cannot
be provisioned at all."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for

pytestmark = pytest.mark.redis


def test_the_broker_at_its_sub_account_limit_leaves_the_upstream_uninformed(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: the broker has reached KuCoin's sub-account limit (``maxAccountSize``; the simulator's
    ``max_account_size=0``). A customer is created and approved (a 250 USDT funding line).

    What happens: Add SubAccount is refused ("sub-account count exceeds the limit"), the step is blocked (journal
    ``blocked``, dead letter, ``provisioner_customers_blocked``) — and the outbound stream stays empty: no
    ``provisioning.failed``, no ``sub_account.created``, nothing about the funding line. The same happens when all
    ten name attempts are refused (``MAX_NAME_ATTEMPTS``).

    Why it is wrong: README, "Blocked is never silent": "A step the exchange refuses for good is blocked, reported
    upstream (``provisioning.failed``)"; docs/integration.md lists ``provisioning.failed`` as "a step KuCoin refused
    for good". Every other block path (``blocks.fail``, ``hold_offboarding``) sends it; this one is the step every
    other depends on. The upstream's sign-up shows the customer as being provisioned for as long as the limit
    stands (it can be days for KuCoin to raise it), and — with finding ``test_an_offboarding_before_the_sub_account_
    leaves_funding_lines_without_a_verdict`` — an upstream that cancels the sign-up never hears of its lines either.

    Suggested fix: pass ``outbound=[failed(record, steps.SUBACCOUNT, reason, now)]`` in both ``ctx.block`` calls of
    ``worker/provisioning/subaccount_steps.py`` (or call ``blocks.fail``), and assert in ``tests/core/
    test_account_limit.py`` that the upstream hears it.

    Likelihood: medium: the sub-account limit is a real KuCoin broker-level quota that a growing broker hits, and
    when it does, it hits every new customer at once; impact: every affected sign-up silently stalled upstream.
    """
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(max_account_size=0))
    try:
        ev = events_for("at-the-limit", funding=(("USDT", "250"),))
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref)
        record = rig.record(ref)
        assert record.sub_account is None and "subaccount" in record.blocked, "precondition: creation blocked"
        assert rig.blocked, "precondition: the run raised the block (dead letter)"
        told = outbound_of(rig, "provisioning.failed")
        assert told, (
            f"the sub-account step is blocked ({record.blocked['subaccount'].reason[:60]}…) but the upstream heard "
            f"{[e['type'] for e in rig.outbound()] or 'nothing'}"
        )
    finally:
        rig.close()
