"""An issuance whose answer was lost leaves a key whose secret we never held (an orphan); its delete unanswered past
``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS`` blocks the issuance with the intent (the orphans still to delete) kept in
the block, not as the record's pending write (f50cc22: ``resolve_api_key`` → ``fail(..., keep_intent=True)``). The
record then holds no trace of the orphan outside that block, and two ways lose the block:

- the offboarding goes on (nothing pending holds it any more) and, with no key recorded, closes without listing the
  sub-account's keys; ``CloseCustomer`` drops every block as moot; the orphan stays live on the exchange for good;
- an operator's retry while another write of the customer is pending (a top-up's transfer awaiting its settle
  delay) lifts the block without putting the intent back (``_orphans_to_delete`` gives up "while anything else is
  pending"): the key is issued again under the same label and the orphan is never looked for again.

Before f50cc22 the issuance stayed pending until every orphan was deleted, so neither could happen.
"""

from __future__ import annotations

import pytest

from handlers import steps
from sandbox import SandboxConfig
from tests.adversarial.helpers import set_faults, topup
from tests.core.harness import Rig, events_for
from tests.provisioning.test_stuck_unknown import _drive

pytestmark = pytest.mark.redis

BOUND_S = 3600


def _live_on_exchange(rig: Rig) -> list[str]:
    return sorted(k["apiKey"] for k in rig.state()["apiKeys"] if k["deletedAt"] is None)


def _blocked_with_an_orphan(rig: Rig, customer: str) -> tuple[str, dict[str, dict[str, object]], str]:
    """Every Add SubAccount API applied with its answer lost, every Delete SubAccount API answered 5xx: the customer's
    first issuance is blocked past the bound with one orphan kept in the block. Then the exchange answers again.
    Returns (ref, events, the orphan's api key)."""
    ev = events_for(customer, funding=())
    (ref,) = rig.publish(ev["created"])
    rig.settle(ref)
    rig.publish(ev["kyc"])
    _drive(rig, ref, for_ms=2 * BOUND_S * 1000, until_blocked=True)
    record = rig.record(ref)
    block = record.blocked.get(steps.issue(0))
    assert block is not None and block.intent is not None, f"precondition: issuance blocked: {record.blocked}"
    (orphan,) = _live_on_exchange(rig)
    assert orphan in block.reason and not record.keys and record.pending is None
    set_faults(rig, "add_sub_account_api", drop=0.0)
    set_faults(rig, "delete_sub_account_api", **{"5xx": 0.0})
    return ref, ev, orphan


def _rig(redis_url: str, key_prefix: str) -> Rig:
    config = SandboxConfig.from_dict(
        {"faults": {"per_endpoint": {"add_sub_account_api": {"drop": 1.0}, "delete_sub_account_api": {"5xx": 1.0}}}}
    )
    return Rig(redis_url, key_prefix, config=config, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S))


def test_an_offboarding_closes_over_an_issuance_blocked_with_an_orphan(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: a customer's first key is issued; Add SubAccount API applies it but the answer is lost, and every
    Delete SubAccount API of that orphan (a key whose secret we never held) goes unanswered for longer than
    ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS`` (here 1 h). The issuance is blocked (``key:0``, the orphans kept in
    the block's intent; "once the exchange answers again, `provisioner customer retry` deletes them"). The exchange
    recovers. The customer, who never got a key, is offboarded before the operator gets to the retry.

    What happens: with nothing pending, ``_offboard`` runs: no live key to revoke, nothing to sweep; no key is
    recorded, so no key listing is made before the close (``ListKeys`` runs only when ``record.keys`` is not
    empty); ``CloseCustomer`` closes and drops every block as moot. The orphan key stays live on the exchange (its
    permissions and whitelist intact), nothing is blocked or counted any more (``CustomersBlocked`` stops), and an
    operator's retry of the closed customer does nothing (``_orphans_to_delete`` skips a closed record).

    Why it is wrong: README: "Settled by listing the sub-account's keys and deleting every key with that label whose
    secret we do not hold, then issuing again: no orphan key"; the block's own reason promises the retry deletes it.
    Before f50cc22 the issuance intent stayed pending until the orphan was deleted, and the offboarding waited.

    Suggested fix: an offboarding does not close while a block keeps orphans to delete: put the kept intent back as
    pending when offboarding starts (nothing else pending), or list the keys before every close whatever the record
    holds (``ListKeys`` records an unknown key, which the offboarding then revokes), and never drop such a block as
    moot.

    Likelihood: low — a lost issuance answer and a day (the default bound) of unanswered deletes; but a customer who
    never got a key is exactly one who leaves, and the result is a live key on a closed customer that nothing looks
    at again.
    """
    rig = _rig(redis_url, key_prefix)
    try:
        ref, ev, orphan = _blocked_with_an_orphan(rig, "adv56-orphan-close")
        rig.publish(ev["offboard"])
        rig.settle(ref)
        rig.run(ref, retry_blocked=True)  # what the block's reason tells the operator to do
        rig.settle(ref)
        record = rig.record(ref)
        assert record.closed_at_ms is not None, "precondition: the customer closed"
        live = _live_on_exchange(rig)
        assert orphan not in live, (
            f"customer closed (blocks left: {sorted(record.blocked)}), yet key {orphan} — issued by the exchange, its "
            f"secret never held — is still live on the sub-account; the exchange lists live keys {live}"
        )
    finally:
        rig.close()


def test_a_retry_while_a_transfer_is_pending_drops_the_orphans_to_delete(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: as above, the first issuance is blocked with an orphan kept in the block; the exchange recovers. A
    top-up arrives; its transfer's answer is lost (its intent pending for the settle delay). The operator runs
    ``provisioner customer retry`` (or replays the dead letter) meanwhile, as the block's reason says.

    What happens: ``_unblock`` lifts the block; ``_orphans_to_delete`` does not put the intent back because another
    intent is pending, and the block (the only record of the orphan) is gone. The transfer settles, the planner
    issues generation 0 again under the same label, and nothing ever lists the label again: the sub-account holds our
    key and the orphan, both live, for the customer's whole life.

    Why it is wrong: "no key ever lives without its secret held" (``issue_api_key``); README: "no orphan key". The
    retry was the very act the block's reason prescribes to delete it.

    Suggested fix: never drop a kept orphan intent: keep the block (or a record field naming the orphans) until the
    intent can stand pending again, or let the planner resolve kept orphans before it issues that generation.

    Likelihood: low — needs the orphan block above and another write in flight at the moment of the retry (any
    top-up, whitelist change or rotation of the customer).
    """
    rig = _rig(redis_url, key_prefix)
    try:
        customer = "adv56-orphan-pending"
        ref, _, orphan = _blocked_with_an_orphan(rig, customer)
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup(customer, "topup", 5, [("USDT", "100")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        assert rig.record(ref).pending is not None, "precondition: the top-up's transfer is pending"
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)
        # the orphans could not stand pending beside the transfer: the issuance stays blocked, orphans and all
        assert any(b.intent is not None for b in rig.record(ref).blocked.values()), "the orphans are never forgotten"
        rig.run(ref, retry_blocked=True)  # once the transfer settled, the retry deletes them, then issues the key
        rig.settle(ref)
        record = rig.record(ref)
        assert not record.blocked and len(record.live_keys) == 1, "precondition: the retry issued the key"
        held = [k.api_key for k in record.live_keys]
        live = _live_on_exchange(rig)
        assert live == held, (
            f"we hold key {held}; the exchange lists live keys {live}: orphan {orphan} (secret never held) was "
            "forgotten by the retry and stays live"
        )
    finally:
        rig.close()
