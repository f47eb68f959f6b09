"""3ee62ca: a funding line's committed verdict drops the balance snapshot, so an offboarding reads the balances again
before it closes. That helps only if the money is in the sub-account when the verdict is given. A line goes to an
operator because its transfer is *still PROCESSING* an hour after it was accepted (``_stuck``: "is not final ...
check with KuCoin, then decide"); on an exchange that credits a transfer when it completes (the simulator's
``transfer_credit: on_completion``, the case 3ee62ca was made for), a ``--committed`` given while KuCoin still shows
PROCESSING re-reads balances that do not hold the credit yet: the customer is closed, and the credit lands later in
the closed customer's sub-account.

Scenario: default settings, transfers PROCESSING for six hours, credited on completion. Customer C's 250 USDT
top-up is accepted and stays PROCESSING; C is offboarded; at the hour the line is blocked for an operator and the
sweep moves the balances back. At two hours the on-call asks KuCoin: the Special Account was debited, the transfer
is PROCESSING and will complete — ``settle-transfer --committed`` (the money left the Special Account; nothing in the
block or README says to wait for SUCCESS). The worker reads the balances again (0), and closes C.

What happens: at six hours the transfer completes; 250 USDT sit in the sub-account of a closed customer whose keys are
revoked and whose record no longer sweeps.

Why it is wrong: README guarantee 6 — a customer is closed only when the balances read after the last movement of
money into it are back. The worker holds the orderId (the blocked intent and the operator's ``--order-id``) and can
see the transfer is not final.

Suggested fix: a committed verdict on a funding line whose transfer the exchange still shows PROCESSING keeps the
offboarding from closing: record the line ACCEPTED (committed for the caps and the upstream) and let
``confirm_transfer`` read it to SUCCESS before the snapshot is dropped and the close is planned; or have
``settle-transfer --committed`` refuse while Get Transfer History says PROCESSING.

Likelihood in production: needs a transfer PROCESSING for over an hour during an offboarding, on an exchange that
credits on completion (undocumented for KuCoin), and an on-call who answers before it completes — plausible, since the
block asks for a verdict on exactly such a transfer. Money not lost but stranded, silently.
"""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, topup, usdt_held
from tests.core.harness import Rig, events_for
from worker.provisioning.operator import OperatorError, settle_transfer


def test_a_committed_verdict_while_processing_closes_the_customer_before_the_credit(
    redis_url: str, key_prefix: str
) -> None:
    config = {"transfer_processing_ms": 6 * 3_600_000, "transfer_credit": "on_completion"}
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict(config))
    try:
        ref, uid = onboard_with_a_key(rig, "early")
        rig.publish(topup("early", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        rig.publish(events_for("early", funding=())["offboard"])
        for _ in range(3):  # an hour and a half: blocked at the hour, the sweep done
            rig.clock.advance_ms(30 * 60_000)
            rig.settle(ref)
        record = rig.record(ref)
        assert "fund:early-topup#0" in record.blocked and record.closed_at_ms is None, record.blocked
        assert usdt_held(rig, uid) == 0

        rig.clock.advance_ms(30 * 60_000)  # two hours: still PROCESSING, the Special Account debited
        transfer = next(t for t in rig.state()["transfers"] if t["specialUid"] == uid and t["direction"] == "OUT")
        assert transfer["status"] == "PROCESSING", transfer
        with pytest.raises(OperatorError, match="PROCESSING"):  # the exchange's record beats the on-call's word
            settle_transfer(rig.app, ref, "fund:early-topup#0", committed=True, who="oncall", note="KuCoin: debited")
        rig.settle(ref)
        closed = rig.record(ref).closed_at_ms is not None

        rig.clock.advance_ms(5 * 3_600_000)  # the transfer completes: credited now
        assert usdt_held(rig, uid) == 250
        with pytest.raises(OperatorError, match="SUCCESS"):
            settle_transfer(rig.app, ref, "fund:early-topup#0", committed=False, who="oncall", note="wrong")
        settle_transfer(rig.app, ref, "fund:early-topup#0", committed=True, who="oncall", note="KuCoin: SUCCESS")
        rig.settle(ref)
        assert not (closed and usdt_held(rig, uid) > 0), (
            f"closed with {usdt_held(rig, uid)} USDT credited after the close"
        )
        assert rig.record(ref).closed_at_ms is not None and usdt_held(rig, uid) == 0
    finally:
        rig.close()
