"""The per-customer cap counts ``record.funded`` (committed lines, once each) and the lines in doubt. A line the
recheck found paid twice (``double:<line>`` block, exchange distrusted) is still counted once: the second payment,
which the worker itself found and reported, is not counted, and the next top-up is sent into the room it took."""

from __future__ import annotations

from decimal import Decimal

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup, total
from tests.core.harness import Rig
from tests.webhooks.test_contract import validate


def test_a_top_up_after_a_detected_double_payment_overruns_the_customer_cap(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe`` while the exchange executes a repeated clientOid again
    (``accept``: the misconfiguration the recheck exists for, tests/core/test_money.py). Per-customer cap 1000 USDT.
    Customer W's top-up t1 of 400 USDT is sent; the answer is lost; the re-send under the same clientOid pays again:
    800 USDT reached the sub-account. The recheck finds it: ``double:W-t1#0`` blocked, ``provisioning.failed``, the
    exchange distrusted. Later (nobody has acted on the block yet) the upstream asks for a top-up t2 of 500 USDT.

    What happens: the planner's cap sees ``funded`` = 400 (line t1 committed once) + 500 <= 1000 and sends t2: the
    sub-account received 1300 USDT against a cap of 1000, with the worker's own journal saying 800 of it was t1's.
    The Special Account's daily cap has the same gap: the re-send reserved nothing more on its day (one reservation
    per line and day), so the day reads 400 USDT used for 800 moved.

    Why it is wrong: the cap must count every transfer that may have moved money; here the second payment is not
    even in doubt — the worker found it and told the upstream. Moving more money to a customer already known to be
    over-paid turns a flagged incident into a cap breach.

    Fixed: the recheck records them (``TransferRecord.extra_paid``, counted by ``funded``) and reserves them on
    the day's cap (``money_steps._count_again``); a recheck that cannot tell counts the line once more.

    Suggested fix: record the second payments the recheck counts on the line (e.g. ``TransferRecord.extra_paid``,
    or the line's amount x ``extra``) and add them to ``CustomerRecord.funded``; when the count is unknown (``extra
    is None``: "cannot tell") count the line's amount once more as in doubt, or hold the currency's funding while a
    ``double:`` block of it is open.

    Likelihood: low (needs the exchange to contradict the clientOid setting, or a ledger slower than its bound),
    but the recheck exists precisely for it; impact: money beyond the per-customer cap, knowingly.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(duplicate_client_oid="accept"),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "dbl-cap")
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("dbl-cap", "t1", 5, [("USDT", "400")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)
        assert total(paid_to(rig, uid)) == Decimal(800), paid_to(rig, uid)  # paid twice: the setting was wrong
        assert "double:dbl-cap-t1#0" in rig.record(ref).blocked
        (told,) = [e for e in outbound_of(rig, "provisioning.failed") if e["step"] == "double:dbl-cap-t1#0"]
        assert told["second_payments"] == 1
        validate(told)  # the published contract documents the count
        day = rig.record(ref).transfers["dbl-cap-t1#0"].day
        assert day is not None
        used = rig.app.ledger.used(day=day, currency="USDT")
        assert used >= Decimal(800), f"the Special Account's day counts {used} USDT used for 800 moved"

        rig.publish(topup("dbl-cap", "t2", 6, [("USDT", "500")]))
        rig.settle(ref)

        paid = total(paid_to(rig, uid))
        completed = [e["key"] for e in outbound_of(rig, "funding.completed")]
        assert paid <= 1000, f"{paid} USDT moved to the sub-account against a cap of 1000 (told completed: {completed})"
    finally:
        rig.close()
