"""A funding transfer still PROCESSING after an hour goes to an operator (``_stuck``); an offboarding meanwhile
moves the balances back (the line's amount is only in doubt, not accepted). Where the exchange credits a transfer
only when it completes — KuCoin does not document when the money reaches the sub-account — the money arrives
after the sweep. The operator then says the transfer committed, and nothing read the balances again: the customer
is closed with the late credit in its sub-account.

Scenario: default settings, transfers PROCESSING for days. Customer C is paid a 250 USDT top-up: accepted,
PROCESSING. C is offboarded; an hour later the line is blocked for an operator and the sweep moves the sub-account's
balances back. Six hours after it was sent the transfer completes and its 250 reach the sub-account (the simulator's
``transfer_credit: on_completion``). The on-call, told by KuCoin the transfer succeeded, answers ``settle-transfer
--committed``.

What happened (before the fix): the verdict cleared the last doubt and the customer was closed at once, with 250
USDT left in a sub-account no record watches any more.

Why it is wrong: README guarantee 6 — offboarding closes a customer only when the balances read after the last
movement of money into it are back; a verdict that money moved into the sub-account is such a movement.

Fix: a funding line's committed verdict (an operator's, or the exchange's) drops the balance snapshot: an offboarding
reads the balances again before it closes.

Likelihood: needs a transfer stuck in PROCESSING for an hour during an offboarding, on an exchange that credits on
completion; rare, and silent where it happens.
"""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, topup, usdt_held
from tests.core.harness import Rig, events_for
from worker.provisioning.operator import settle_transfer


def test_a_committed_verdict_after_the_sweep_is_swept_before_the_close(redis_url: str, key_prefix: str) -> None:
    config = {"transfer_processing_ms": 6 * 3_600_000, "transfer_credit": "on_completion"}
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict(config))
    try:
        ref, uid = onboard_with_a_key(rig, "late")
        rig.publish(topup("late", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        rig.publish(events_for("late", funding=())["offboard"])
        for _ in range(3):  # an hour and a half: blocked at the hour, the sweep done
            rig.clock.advance_ms(30 * 60_000)
            rig.settle(ref)
        record = rig.record(ref)
        assert "fund:late-topup#0" in record.blocked and record.closed_at_ms is None, record.blocked
        assert usdt_held(rig, uid) == 0  # the sweep moved everything back meanwhile (the 250 are on their way)

        rig.clock.advance_ms(6 * 3_600_000)
        assert usdt_held(rig, uid) == 250  # the transfer completed: credited now
        settle_transfer(rig.app, ref, "fund:late-topup#0", committed=True, who="oncall", note="KuCoin: SUCCESS")
        rig.settle(ref)

        record = rig.record(ref)
        assert record.closed_at_ms is not None
        assert usdt_held(rig, uid) == 0, f"closed with {usdt_held(rig, uid)} USDT left in the sub-account"
    finally:
        rig.close()
