"""d40fbb5 (adv26 fix) stopped a cap from telling ``funding.refused`` for a line whose earlier send may have paid
(``earlier_send_ms``: the ledger showed nothing of a lost send, and a ledger slower than its bound shows it late):
such a line is now blocked for an operator, counted in doubt, its earlier day reservations kept. Offboarding is the
other way a line is refused before it is sent, and ``planner._offboard`` still refuses it blind: a line our record
holds in ``earlier_sends`` is neither recorded nor in doubt once the ledger said "not committed", so it gets
``RefuseFunding(OFFBOARDED_REASON)`` — ``funding.refused`` told, the line's reservations on yesterday, today and
tomorrow released, nothing searched or flagged."""

from __future__ import annotations

from decimal import Decimal

import pytest

from handlers.daily_cap import utc_day
from tests.adversarial.helpers import (
    all_paid,
    onboard_with_a_key,
    outbound_of,
    paid_to,
    set_faults,
    slow_ledger_rig,
    topup,
    total,
)
from tests.core.harness import events_for

pytestmark = pytest.mark.redis


def test_offboarding_refuses_a_line_whose_lost_send_paid(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: the premise of adv21/23/26 — ``PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown`` (the default: the ledger
    decides a lost transfer), a ledger listing entries 10 minutes late while ``PROVISIONER_LEDGER_LAG_MS`` says 60
    s, the misconfiguration the README promises is "never silent" and that d40fbb5 made block for an operator
    rather than refuse. Special Account daily cap 1000 USDT. Customer X's 400 USDT top-up is sent; it executes, its
    answer is lost. The upstream offboards X a moment later (before the settle delay).

    What happens: at the settle delay the ledger is silent: "not committed", recorded in ``earlier_sends``, the
    intent cleared. The next plan is the offboarding's: the line is neither recorded nor in doubt, so
    ``_offboard`` returns ``RefuseFunding``: ``funding.refused`` ("offboarded before this line was funded") for a
    line whose 400 USDT reached X's sub-account (SUCCESS under the line's clientOid), and today's reservation of
    the line is released. The sweep then moves the 400 back and ``customer.offboarded`` reports ``swept: 400`` — for
    a customer the upstream was told was never funded. Nothing is searched again, nothing flagged, the exchange not
    distrusted. The day's cap has forgotten the 400 that moved: customer Y is then paid 700 + 300 the same day,
    1400 USDT out of the Special Account under a 1000 USDT daily cap.

    Why it is wrong: the upstream is told ``funding.refused`` while the transfer exists (funding.completed iff it
    does), silently, in the very case d40fbb5 fixed for the caps; and the daily cap is exceeded (it counts every
    line that may have moved money, and this one did).

    Suggested fix: in ``planner._offboard`` (and ``_late_lines``), a line with ``record.earlier_sends[key]`` (an
    earlier send may have paid; no operator's word that it did not) is not refused blind: look for it in the ledger
    once more after the line's settle window (``LookForTransfer``-style, found → completed), else block it for an
    operator counted in doubt, as ``money_steps._refused_unsent`` does; in no case release the reservations its earlier
    send made.

    Likelihood: low (a ledger slower than its bound, and an offboarding within a lost transfer's settle window —
    offboardings often follow a failed or disputed funding); impact: ``funding.refused`` for money that moved, a
    daily cap overrun, unflagged.
    """
    rig = slow_ledger_rig(
        redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000"
    )
    try:
        ref_x, uid_x = onboard_with_a_key(rig, "gone-x")
        ref_y, _ = onboard_with_a_key(rig, "gone-y")
        today = utc_day(int(rig.clock() * 1000))
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("gone-x", "t1", 5, [("USDT", "400")]))
        rig.run(ref_x)
        set_faults(rig, "transfer", drop=0.0)
        assert [(t["status"], t["amount"]) for t in paid_to(rig, uid_x)] == [("SUCCESS", "400")]
        rig.publish(events_for("gone-x")["offboard"])
        rig.settle(ref_x)
        # the line is put to an operator (counted in doubt), the offboarding waits for the verdict on the money
        x = rig.record(ref_x)
        assert x.closed_at_ms is None and [b.manual for b in x.blocked.values()] == [True], x.blocked

        rig.publish(topup("gone-y", "t1", 6, [("USDT", "700")]))
        rig.settle(ref_y)
        rig.publish(topup("gone-y", "t2", 7, [("USDT", "300")]))
        rig.settle(ref_y)
        assert utc_day(int(rig.clock() * 1000)) == today

        refused = {e["key"]: e["reason"] for e in outbound_of(rig, "funding.refused")}
        paid_x = [(t["clientOid"], t["status"], t["amount"]) for t in paid_to(rig, uid_x)]
        out_today = total([t for t in all_paid(rig) if utc_day(int(t["createdAt"])) == today])
        assert "gone-x-t1#0" not in refused, (
            f"told funding.refused ({refused.get('gone-x-t1#0')}) for a line whose transfer is {paid_x}; "
            f"{out_today} USDT paid out today under a 1000 USDT daily cap"
        )
        assert out_today <= Decimal(1000), out_today
    finally:
        rig.close()
