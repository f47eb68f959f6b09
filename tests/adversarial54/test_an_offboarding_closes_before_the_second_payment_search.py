"""A funding line sent again while an earlier send of it may have gone through is searched in the ledger for a second
payment "after the settle delay and ten times later" (README, "Settings the exchange contradicts": "This is never
silent"). The search is a wake-up of the customer's record (``TransferRecord.recheck_at_ms``, run by
``planner._confirm``). An offboarding closes the customer without waiting for it: ``_offboard`` asks ``_confirm``,
which only *wakes* for a recheck not yet due, and ``CloseCustomer`` follows; a closed record is never planned
again (``plan``: ``Idle("closed")``). The second payment is then never flagged, counted or told."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Rig, events_for

pytestmark = pytest.mark.redis

DAY_MS = 86_400_000


def _paid_twice(rig: Rig, customer: str) -> tuple[str, str, str]:
    """A top-up of 250 USDT whose first send's answer is lost; the worker (``dedupe`` setting, on an exchange that
    executes a repeated clientOid again) settles it by re-sending: the line is paid twice. Returns (ref, uid,
    line key)."""
    ref, uid = onboard_with_a_key(rig, customer)
    set_faults(rig, "transfer", drop=1.0)
    up = topup(customer, "topup", 5, [("USDT", "250")])
    rig.publish(up)
    rig.run(ref)
    set_faults(rig, "transfer", drop=0.0)
    line = f"{up['id']}#0"
    for _ in range(10):  # the lost send is settled, a settle delay later, by sending it again under its clientOid
        entry = rig.record(ref).transfers.get(line)
        if entry is not None and entry.status.value == "committed":
            break
        wake = rig.app.due.next_due_ms(ref)
        if wake is not None:
            rig.clock.advance_ms(max(0, wake - int(rig.clock() * 1000)))
        rig.run(ref)
    assert entry is not None
    assert entry.status.value == "committed" and entry.recheck_at_ms, "precondition: a second-payment search is due"
    assert len(paid_to(rig, uid)) == 2, "precondition: the exchange executed the repeat (the setting is wrong)"
    return ref, uid, line


def _rig(redis_url: str, key_prefix: str) -> Rig:
    """An exchange that executes a repeated clientOid again; a worker told it deduplicates (the wrong setting)."""
    return Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(duplicate_client_oid="accept"),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
    )


def _flagged(rig: Rig) -> bool:
    doubles = [e for e in outbound_of(rig, "provisioning.failed") if str(e.get("step", "")).startswith("double:")]
    return bool(doubles) or rig.app.state.distrust_reason() is not None


def test_without_an_offboarding_the_second_payment_is_flagged(redis_url: str, key_prefix: str) -> None:
    """The control: the same double payment on a customer that stays is flagged by the search (README)."""
    rig = _rig(redis_url, key_prefix)
    try:
        ref, _, _ = _paid_twice(rig, "adv54-recheck-stays")
        rig.settle(ref, horizon_ms=DAY_MS)
        assert _flagged(rig), "the search flags the line paid twice and distrusts the exchange"
    finally:
        rig.close()


def test_an_offboarding_closes_before_the_second_payment_search(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: the README's "Settings the exchange contradicts": ``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe`` on an
    exchange that in fact executes a repeated clientOid again (``accept``; the same holds for a ledger slower than
    ``PROVISIONER_LEDGER_LAG_MS`` under ``unknown``, whose search ten settle delays later is the one that catches
    it). A customer's 250 USDT top-up is sent; the answer is lost; a settle delay later the worker re-sends it under
    the same clientOid as its setting says is safe; the exchange pays it a second time. The line is recorded
    committed with a second-payment search due after the settle delay (``recheck_at_ms``). A minute later the
    customer is offboarded (it quits right after a top-up; or the upstream offboards a batch).

    What happens: ``_offboard`` revokes the key, reads the balances (500 USDT), sweeps them back, lists the keys once
    the listing lag has passed and closes the customer — all before the search is due (``_confirm`` only wakes for
    it). The closed record is never planned again, so the search never runs: no ``double:`` block, no
    ``provisioning.failed``, the exchange is not distrusted, the second payment is not counted on the day's cap.
    The upstream hears one ``funding.completed`` of 250 and ``customer.offboarded`` with ``swept: 500``, unexplained.

    Why it is wrong: README: "every transfer sent while an earlier send of its line may have gone through is searched
    in the ledger again (after the settle delay and ten times later); a second payment blocks the line
    (``double:LINE``, ``provisioning.failed``, alert ``CustomersBlocked``) and makes every worker distrust the
    exchange ... This is never silent." Here it is silent, and the deployment goes on re-sending lost transfers
    under the wrong setting for every other customer (each paid twice until one of them happens to stay long
    enough to be searched). The money of this customer came back with the sweep, which is why nothing else shows it.

    Suggested fix: an offboarding does not close while a committed funding line has a search still to run: run it
    before the sweep (it needs only the ledger), or wait for it (``_offboard`` returns ``p.idle`` with its wake
    instead of closing, as it does for accepted transfers); alternatively keep planning ``_confirm`` for a closed
    record whose lines have searches due.

    Likelihood in production: low — it needs the exchange to contradict a setting and a lost answer, then an
    offboarding within a settle delay (the first search) or ten (the second, the one that catches a slow ledger,
    about ten to twenty minutes). But it disables the one alarm that exists for that misconfiguration.
    """
    rig = _rig(redis_url, key_prefix)
    try:
        customer = "adv54-recheck-quits"
        ref, uid, line = _paid_twice(rig, customer)
        rig.publish(events_for(customer)["offboard"])
        rig.settle(ref, horizon_ms=DAY_MS)
        record = rig.record(ref)
        assert record.closed_at_ms is not None, "precondition: the offboarding closed the customer"
        assert len(paid_to(rig, uid)) == 2, "the line was paid twice"
        swept = outbound_of(rig, "customer.offboarded")[0]["swept"]
        assert _flagged(rig), (
            f"line {line} was paid twice (the exchange executed the repeat under the dedupe setting), the customer "
            f"was closed with swept {swept} before the second-payment search ran (recheck_at_ms "
            f"{record.transfers[line].recheck_at_ms} > closed_at_ms {record.closed_at_ms}): nothing was flagged, "
            "counted or told, and the exchange is still trusted"
        )
    finally:
        rig.close()
