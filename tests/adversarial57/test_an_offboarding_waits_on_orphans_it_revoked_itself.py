"""90c8231 makes an offboarding wait while a block keeps an issuance's orphan keys (``_offboard``: "keys ... must be
deleted first (`provisioner customer retry`)"). The wait reads only the block's ``orphans_unsure``; it never asks
whether those keys are still there. The offboarding itself lists the sub-account's keys before it closes
(``ListKeys``, whenever a key of ours was revoked): an orphan still listed is recorded as a live key and revoked like
any other. Once it is gone the block still names it, and the customer is held open for an operator's retry that has
nothing left to delete.
"""

from __future__ import annotations

import pytest

from handlers import steps
from tests.adversarial.helpers import set_faults
from tests.core.harness import Rig, events_for
from tests.provisioning.test_stuck_unknown import _drive

pytestmark = pytest.mark.redis

BOUND_S = 3600


def _live_on_exchange(rig: Rig) -> list[str]:
    return sorted(k["apiKey"] for k in rig.state()["apiKeys"] if k["deletedAt"] is None)


def test_an_offboarding_waits_for_a_retry_on_an_orphan_it_already_revoked(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: a customer holds its first key (generation 0). It asks for a rotation; Add SubAccount API of
    generation 1 is applied but its answer lost (an orphan, secret never held), and every Delete SubAccount API of
    that orphan is answered 5xx for longer than ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS`` (here 1 h): ``key:1`` is
    blocked with the orphan kept in the block's intent. The exchange recovers; the customer is offboarded before an
    operator runs the retry.

    What happens: the offboarding revokes key 0, then lists the sub-account's keys (``ListKeys``: a key was
    revoked), finds the orphan, records it as a live key and revokes it — the exchange no longer lists it. Every
    balance is back, nothing is in doubt; yet ``_offboard`` still reads the orphan in the ``key:1`` block and idles
    for good ("keys ... must be deleted first"). The customer is never closed, ``customer.offboarded`` is never
    told, until an operator runs ``provisioner customer retry`` — whose only effect is to find the key gone.

    Why it is wrong: "nothing stuck": the offboarding waits on a condition already met, by the worker's own hand;
    README: offboarding closes once no key is live and no money is in doubt. The upstream is left without its
    ``customer.offboarded`` (and the close's account of what was swept) for as long as no human acts.

    Suggested fix: in ``_offboard``, count as orphaned only keys of a block that the record does not hold revoked
    (or that a listing after the block still shows); or let ``list_keys`` settle the block's ``orphans_unsure``
    (drop the ones it records, so the revocation path owns them, and drop the block once none is left).

    Likelihood: low — a lost issuance answer on a rotation and a day of unanswered deletes, then an offboarding
    before the retry; the cost is a customer held open (alerted as blocked) rather than money.
    """
    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S))
    try:
        ev = events_for("adv57-orphan-revoked", funding=())
        (ref,) = rig.publish(ev["created"])
        rig.publish(ev["kyc"])
        rig.settle(ref)
        (first,) = [k.api_key for k in rig.record(ref).live_keys]
        set_faults(rig, "add_sub_account_api", drop=1.0)
        set_faults(rig, "delete_sub_account_api", **{"5xx": 1.0})
        rig.publish(ev["rotate"])
        _drive(rig, ref, for_ms=2 * BOUND_S * 1000, until_blocked=True)
        record = rig.record(ref)
        block = record.blocked.get(steps.issue(1))
        assert block is not None and block.intent is not None, f"precondition: key:1 blocked: {record.blocked}"
        (orphan,) = [k for k in _live_on_exchange(rig) if k != first]
        assert orphan in block.reason, "precondition: the orphan is kept in the block"
        set_faults(rig, "add_sub_account_api", drop=0.0)
        set_faults(rig, "delete_sub_account_api", **{"5xx": 0.0})

        rig.publish(ev["offboard"])
        for _ in range(4):
            rig.settle(ref)
            rig.clock.advance_ms(120_000)
        rig.settle(ref)
        record = rig.record(ref)
        live = _live_on_exchange(rig)
        assert live == [], f"precondition: the offboarding revoked every key, the orphan too: {live}"
        assert record.closed_at_ms is not None, (
            f"no key is live on the exchange (orphan {orphan} revoked by the offboarding itself), nothing in doubt, "
            f"yet the customer is held open waiting for a retry: blocks {sorted(record.blocked)}, "
            f"last report {rig.reports[-1:]}"
        )
    finally:
        rig.close()
