"""adv21/adv23 made a refusal of a send that may repeat a lost one (``earlier_send_ms``: the ledger had said "not
committed" of the lost send) prove nothing: the intent stays and the ledger, then an operator, decide. The same send
can be turned away before it leaves, by our own Special Account daily cap: in ``money_steps.transfer`` the intent's
day rider is refused (``RiderRefused``) and the line goes straight to ``refuse_funding`` — ``funding.refused`` told,
every reservation the line holds on yesterday, today and tomorrow released (the lost send's too), no second-payment
search (nothing was sent, so none is scheduled). Whether the lost send moved money is exactly what the re-send was
meant to cover; a cap's refusal of the re-send says nothing about it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.adversarial.helpers import (
    onboard_with_a_key,
    outbound_of,
    paid_to,
    set_faults,
    slow_ledger_rig,
    topup,
    total,
)

pytestmark = pytest.mark.redis

DAY_MS = 86_400_000


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y%m%d")


def test_a_paid_line_whose_resend_the_daily_cap_refuses_is_told_refused(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown`` (the default: the ledger decides a lost transfer), an
    exchange that executes repeats, a ledger listing entries 10 minutes late while ``PROVISIONER_LEDGER_LAG_MS``
    says 60 s (adv21's premise, the misconfiguration the README promises is "never silent"); Special Account daily
    cap 1000 USDT. At 23:59:30 X's 400 USDT top-up is sent; it executes, its answer is lost. Just after midnight Y's
    700 USDT top-up is paid (today's cap: 700). At 00:00:31 (the settle delay) X's line is judged from the ledger,
    which is silent: "not committed", the line is sent again under its clientOid, reserving today.

    What happens: today's cap cannot take 400 more (700 + 400 > 1000): the intent's rider is refused and
    ``transfer`` calls ``refuse_funding``: ``funding.refused`` ("daily cap ... would be exceeded") for a line whose
    400 USDT reached X's sub-account (SUCCESS under the line's clientOid), and the line's reservation of yesterday —
    the day the money did move — is released: yesterday's cap counts 0. Nothing searches for the lost send again,
    nothing is flagged or distrusted; the per-customer cap no longer counts the 400 either.

    Why it is wrong: the upstream is told a lie (funding.refused iff no transfer exists), silently, in the very case
    the README says is never silent; and the daily cap forgets money that moved. A send with ``earlier_send_ms``
    is one that may repeat a lost send; neither the exchange's refusal (adv21) nor our cap's says the lost one did
    not pay.

    Suggested fix: when a line with ``earlier_send_ms`` (and not ``operator_unsent``) cannot be sent for a cap,
    keep it in doubt instead of refusing it: wait for room (``_wait_out``-style) while asking the ledger again
    after its lag, or block it for an operator counted in doubt; in no case release the reservations the earlier
    send made (``refuse_funding`` releases three days blindly).

    Likelihood: low (a ledger slower than its bound, a lost answer just before midnight, a cap nearly full the next
    day); impact: funding.refused told for money that moved, yesterday's cap under-counted, unflagged.
    """
    rig = slow_ledger_rig(
        redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000"
    )
    try:
        ref_x, uid_x = onboard_with_a_key(rig, "capped-x")
        ref_y, uid_y = onboard_with_a_key(rig, "capped-y")
        now = int(rig.clock() * 1000)
        rig.clock.advance_ms(now // DAY_MS * DAY_MS + DAY_MS - 30_000 - now)  # 23:59:30 UTC
        yesterday = _day(int(rig.clock() * 1000))
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("capped-x", "t1", 5, [("USDT", "400")]))
        rig.run(ref_x)
        set_faults(rig, "transfer", drop=0.0)
        assert [_day(int(t["createdAt"])) for t in paid_to(rig, uid_x)] == [yesterday], paid_to(rig, uid_x)

        rig.clock.advance_ms(40_000)  # 00:00:10
        today = _day(int(rig.clock() * 1000))
        rig.publish(topup("capped-y", "t1", 6, [("USDT", "700")]))
        rig.settle(ref_y)
        assert total(paid_to(rig, uid_y)) == Decimal(700), paid_to(rig, uid_y)

        rig.settle(ref_x)
        refused = {e["key"]: e.get("reason") for e in outbound_of(rig, "funding.refused")}
        paid = [(t["clientOid"], t["status"], _day(int(t["createdAt"]))) for t in paid_to(rig, uid_x)]
        counted = {d: rig.app.ledger.used(day=d, currency="USDT") for d in (yesterday, today)}
        assert "capped-x-t1#0" not in refused, (
            f"told funding.refused ({refused.get('capped-x-t1#0')}) for a line whose transfer is {paid}; the caps "
            f"count {counted}"
        )
        # an operator decides, the line counted in doubt meanwhile; yesterday's cap keeps what moved on it
        blocked = rig.record(ref_x).blocked
        assert [b.manual for b in blocked.values()] == [True], blocked
        assert counted[yesterday] == Decimal(400), counted
    finally:
        rig.close()
