"""A key update (Modify SubAccount API, a whole replacement settled by sending it again) unknown past
``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS`` is blocked with the intent kept in the block, not as the record's pending
write (``StepContext.block`` with ``keep_intent``). The record's key keeps the *old* whitelist, while the exchange may
hold the new one. An operator's retry (``Reconciler._unblock``) only removes the block: the planner then compares the
record's (old) whitelist with the newest list. When that list is the old one again (the customer went back), nothing
is sent, and the key keeps the whitelist of the write nobody settled — silently, the block gone."""

from __future__ import annotations

import pytest

from handlers import steps
from tests.adversarial.helpers import set_faults
from tests.core.harness import Rig, events_for

pytestmark = pytest.mark.redis

HOUR_MS = 3_600_000
FIRST = ["203.0.114.10"]
SECOND = ["198.51.101.7", "198.51.101.8"]


def _drive_until_blocked(rig: Rig, ref: str, *, for_ms: int) -> None:
    end = int(rig.clock() * 1000) + for_ms
    while int(rig.clock() * 1000) < end and not rig.blocked:
        rig.app.due.cancel(ref)
        rig.run(ref)
        wake = rig.app.due.next_due_ms(ref)
        assert wake is not None
        rig.clock.advance_ms(max(wake - int(rig.clock() * 1000), 0))


def _whitelist_on_exchange(rig: Rig, api_key: str) -> list[str]:
    for key in rig.state()["apiKeys"]:
        if key["apiKey"] == api_key:
            return list(key["ipWhitelist"])
    raise AssertionError(f"key {api_key} not on the exchange")


def test_a_blocked_update_lifted_by_a_retry_leaves_the_key_on_the_reverted_whitelist(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: a customer's key has whitelist A. ``customer.ip_changed`` asks for B; the exchange applies every Modify
    SubAccount API request but its answers are lost (time-outs) for longer than
    ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS`` (here 1 h). The update is blocked (``update:KEY``, not manual, "once
    the exchange answers again, `provisioner customer retry` sends it again"). The key holds B on the exchange; our
    record still says A. The customer then changes its whitelist back to A (``customer.ip_changed`` again). The
    exchange recovers and the operator runs ``provisioner customer retry`` as the block's reason tells.

    What happens: ``_unblock`` removes the block; the intent kept in it is not restored as pending. The planner
    compares the record's whitelist (A) with the newest list (A): equal, nothing is sent. The customer is idle, no
    block, nothing told; the exchange's key keeps whitelist B — the addresses the customer left — and refuses A.

    Why it is wrong: README: "``customer.ip_changed`` — the live key's whitelist equals the newest list". The block's
    own reason says the key "holds its old access or the new one" and that the retry "sends it again"; it does not.
    Before f4ea629 the intent stayed pending and was re-sent (its own whitelist, B) until answered, after which the
    record said B and the planner sent A. Now the doubt is forgotten by the operator's retry.

    Suggested fix: when a block carries a kept update intent, the retry puts it back as the pending write (sent again
    as a whole replacement, then the planner aligns to the newest list), or marks the key's recorded access unknown
    so the planner always sends the newest list after the retry; never compare the newest list with a recorded access
    the exchange may not hold.

    Likelihood: low — a day (the default bound) of Modify answers lost while applied, and a customer whose list goes
    back before the operator's retry. The effect is a key that admits addresses the customer gave up and refuses the
    ones it uses, with no alert left.
    """
    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS="3600")
    try:
        customer = "adv55-update-revert"
        ev = events_for(customer, funding=())
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        api_key = rig.record(ref).live_keys[0].api_key
        assert _whitelist_on_exchange(rig, api_key) == FIRST

        set_faults(rig, "modify_sub_account_api", drop=1.0)  # applied, answer lost
        rig.publish(ev["ip"])
        _drive_until_blocked(rig, ref, for_ms=2 * HOUR_MS)
        record = rig.record(ref)
        assert steps.update(api_key) in record.blocked, "precondition: the update is blocked past the bound"
        assert record.pending is None
        assert _whitelist_on_exchange(rig, api_key) == SECOND, "precondition: the exchange applied the update"

        back = {**ev["ip"], "id": f"{ev['ip']['id']}-back", "occurred_at": "2026-11-18T10:05:00Z"}
        back["data"] = {"ip_whitelist": FIRST}
        rig.publish(back)
        set_faults(rig, "modify_sub_account_api", drop=0.0)
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)

        record = rig.record(ref)
        assert not record.blocked, "precondition: the retry lifted the block"
        on_exchange = _whitelist_on_exchange(rig, api_key)
        assert on_exchange == FIRST, (
            f"the customer's newest whitelist is {FIRST}, our record says {list(record.live_keys[0].ip_whitelist)}, "
            f"the exchange's key {api_key} holds {on_exchange} (the blocked update's) and nothing is blocked or told"
        )
    finally:
        rig.close()
