"""f649513: ``settle_transfer`` refuses an order "another line of the customer already holds" by looking in
``record.transfers`` only. A line whose transfer is stuck (PROCESSING past the hour: ``_stuck``) leaves
``record.transfers`` for ``record.blocked``, its order in the block's intent (``details.order_id``): that order is
not seen as held, and another line's verdict can take it."""

from __future__ import annotations

import contextlib

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, topup
from tests.core.harness import Crash, Rig
from worker.provisioning.operator import OperatorError, settle_transfer


def test_an_order_named_by_another_lines_block_is_taken_for_this_line(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: the adv17 scenario with line #0 stuck instead of committed: ledger entries without ids, transfers
    PROCESSING for two hours. Customer T's top-up has two lines of 100 USDT. Line #0 is sent (order O). The process
    dies just before line #1's request leaves. Line #1 is blocked (one anonymous debit of 100 in its window — O's —
    outcome unknown); an hour later line #0 is blocked too, as stuck, its block naming order O. When O shows
    SUCCESS, the on-call, working through the blocks, asks KuCoin about #1 and is shown O; answers
    ``settle-transfer fund:<#1> --committed --order-id O``.

    What happens: accepted: O is this line's sub-account, currency and amount, SUCCESS, and no line of
    ``record.transfers`` holds it (line #0 is in ``record.blocked``). ``funding.completed`` is emitted for #1 naming
    O. Then line #0's own block — "order O" — can no longer be settled committed ("order O is line #1's transfer
    already"): the operator is pushed to answer not-committed for the line that *was* paid (a re-send: paid twice)
    or leave it blocked.

    Why it is wrong: f649513 promises that settle-transfer "refuses an order another line of the customer already
    holds"; a stuck line holds its order as surely as a recorded one — the worker wrote it into the block.

    Suggested fix: in ``settle_transfer`` also look through ``record.blocked`` intents (``TransferIntent.order_id``)
    and ``record.pending`` of other keys for the order; refuse with the same message.

    Likelihood: low (a stuck line and an unknown-outcome line of the same amount on one customer, an operator
    settling the unknown one first); impact: a line told completed for another line's transfer, then a wrong
    verdict or a double payment on the other.
    """
    config = {"ledger_context": "none", "transfer_processing_ms": 2 * 3_600_000}
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict(config))
    try:
        ref, uid = onboard_with_a_key(rig, "stuck2")
        rig.publish(topup("stuck2", "topup", 5, [("USDT", "100"), ("USDT", "100")]))
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="before", nth=2)  # #1 never leaves
        with pytest.raises(Crash):
            rig.run(ref)
        for _ in range(6):
            rig.clock.advance_ms(15 * 60_000)
            with contextlib.suppress(AssertionError):
                rig.settle(ref)
        record = rig.record(ref)
        zero, one = record.blocked.get("fund:stuck2-topup#0"), record.blocked.get("fund:stuck2-topup#1")
        assert zero is not None and zero.intent is not None, record.blocked
        assert one is not None and one.manual and one.intent is not None, record.blocked
        order = zero.intent.details.order_id  # type: ignore[union-attr]
        assert order and one.intent.details.order_id is None, (zero, one)  # type: ignore[union-attr]
        assert "stuck2-topup#0" not in record.transfers
        rig.clock.advance_ms(2 * 3_600_000)
        orders = [t for t in rig.state()["transfers"] if t["specialUid"] == uid and t["direction"] == "OUT"]
        assert [t["orderId"] for t in orders] == [order] and orders[0]["status"] == "SUCCESS", orders

        refused = None
        try:
            settle_transfer(
                rig.app, ref, "fund:stuck2-topup#1", committed=True, order_id=order, who="oncall", note="KuCoin"
            )
        except OperatorError as exc:
            refused = exc
        assert refused is not None, f"order {order}, named by line #0's own block, was taken as line #1's payment"
    finally:
        rig.close()
