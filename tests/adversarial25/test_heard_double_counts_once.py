"""054bd1f rebuilds a line the upstream was told was paid more than once (``provisioning.failed`` of its
``double:<line>`` step) with ``extra_paid=1`` whatever the event said: ``heard.HeardOutcome.paid_again`` is a bool
and ``audit_steps._seed_heard`` writes ``extra_paid=1 if o.paid_again`` ("how many times, the event did not say").
The event does say it: ``recheck_transfer``'s reason is "the ledger shows {extra} more transfer(s) ...". A line
paid three times (two lost answers, re-sent under the same clientOid to an exchange that executes repeats) had
``extra_paid=2`` before the loss and ``1`` after it: the per-customer cap forgets one payment."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import (
    onboard_with_a_key,
    outbound,
    paid_to,
    set_faults,
    topup,
    total,
)
from tests.adversarial24.test_a_found_second_payment_is_forgotten_after_a_loss import top_up_after_a_heard_recovery
from tests.core.harness import Rig, events_for

pytestmark = pytest.mark.redis


def test_a_line_paid_three_times_counts_twice_after_recover_heard(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: adv24's (2) setting (``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe``, an exchange that executes repeats),
    per-customer cap 1000 USDT. Customer W's 300 USDT top-up t1: the first send and the first re-send both execute
    with their answers lost, the second re-send is answered: paid three times. The recheck finds 2 more transfers:
    ``extra_paid`` = 2 (``funded`` 900), ``provisioning.failed`` of ``double:<t1>`` ("the ledger shows 2 more
    transfer(s)"). Redis is lost; ``recover --heard`` with the upstream's events (the completion and the double).
    The upstream then asks for a 350 USDT top-up t2.

    What happens: ``_seed_heard`` rebuilds t1 with ``extra_paid`` = 1 (``funded`` 600); 600 + 350 <= 1000: t2 is
    sent. 1250 USDT reached the sub-account against a cap of 1000; before the loss t2 was refused (900 + 350).

    Why wrong: the count the recovery is meant to keep (054bd1f) is kept only for a line paid exactly twice; the
    event the fix reads says how many more times the ledger showed it paid.

    Suggested fix: carry the count, not a flag: a structured field on the ``double:`` event (e.g.
    ``second_payments``: extra, or null for "could not tell"), read into ``HeardOutcome.paid_again: int``; or, as
    adv24 suggested, recheck a heard line from its first possible send so the ledger rebuilds the count.

    Likelihood: low (two lost answers in a row under a wrong clientOid setting, then a loss); impact: money past the
    per-customer cap.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(duplicate_client_oid="accept"),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "lost-tri")
        ev = events_for("lost-tri", funding=())
        t1 = topup("lost-tri", "t1", 5, [("USDT", "300")])
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(t1)
        rig.run(ref)
        for _ in range(5):  # the first re-send is lost too
            if total(paid_to(rig, uid)) >= 600:
                break
            rig.clock.advance_ms(60_000)
            rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)
        assert total(paid_to(rig, uid)) == Decimal(900), paid_to(rig, uid)
        assert rig.record(ref).transfers["lost-tri-t1#0"].extra_paid == 2
        assert rig.record(ref).funded("USDT") == Decimal(900)
        heard = outbound(rig.app)
        doubles = [e for e in heard if e["type"] == "provisioning.failed" and str(e.get("step")).startswith("double:")]
        assert doubles and "2 more transfer" in str(doubles[0].get("reason")), doubles
        rig.clock.advance_ms(3_600_000)

        paid, funded, completed = top_up_after_a_heard_recovery(
            rig, ev, t1, heard, customer="lost-tri", uid=uid, amount="350"
        )
        assert paid <= 1000, (
            f"{paid} USDT moved against a cap of 1000 (record counted {funded} funded after the loss, "
            f"900 before; told completed: {completed})"
        )
    finally:
        rig.close()
