"""135112b: ``settle-transfer --order-id`` is checked by ``_agrees_with_the_order`` — the order must move this line's
amount and currency to this line's sub-account, and its status allow the verdict. Nothing checks that the order is
not already *another line's* payment: two lines of one customer of the same amount are indistinguishable to that
check, and the worker's own record (``record.transfers[...].order_id``) that says whose order it is goes unread.

Scenario: an exchange whose ledger entries carry no ids (simulator ``ledger_context: none``). Customer T's top-up has
two lines of 100 USDT. Line #0 is sent and committed (order O, SUCCESS). The process dies just before line #1's
request leaves (nothing reaches the exchange). After the settle delay the ledger shows one anonymous debit of 100
in #1's window — O's — so #1 is blocked for an operator (outcome unknown). The on-call does what the block says:
asks KuCoin for the transfers of 100 USDT to T's sub-account, is shown O (SUCCESS), and answers
``settle-transfer fund:<#1> --committed --order-id O``.

What happens: the verdict is taken — O moves 100 USDT to T's sub-account and shows SUCCESS — and
``funding.completed`` is emitted for #1 naming O, the order already told completed for #0. One transfer of 100
exists; the upstream was told 200 arrived. Line #1 is never paid.

Why it is wrong: "funding.completed iff the transfer exists" (README guarantees); 135112b's own promise is that the
named order is checked to be "a transfer of this line"; the worker *knows* O is line #0's.

Suggested fix: in ``settle_transfer`` refuse an ``order_id`` that ``record.transfers`` already holds for another key
(and, when the ledger carries clientOids, one whose clientOid is not one the block asks about); say so in the
error so the operator looks for this line's own order.

Likelihood: needs a block of a line whose customer has another line of the same amount paid near it (common:
top-ups of round amounts) and an operator who matches the exchange's order by sub-account and amount — exactly the
evidence the command now checks, so a passing check reads as confirmation. Silent: the upstream credits money that
never moved.
"""

from __future__ import annotations

import contextlib

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, topup
from tests.core.harness import Crash, Rig
from worker.provisioning.operator import OperatorError, settle_transfer


def test_a_committed_verdict_naming_another_lines_order_tells_an_unpaid_line_completed(
    redis_url: str, key_prefix: str
) -> None:
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict({"ledger_context": "none"}))
    try:
        ref, uid = onboard_with_a_key(rig, "twolines")
        rig.publish(topup("twolines", "topup", 5, [("USDT", "100"), ("USDT", "100")]))
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="before", nth=2)  # #1 never leaves
        with pytest.raises(Crash):
            rig.run(ref)
        for _ in range(4):
            rig.clock.advance_ms(15 * 60_000)
            rig.settle(ref)
        record = rig.record(ref)
        step = "fund:twolines-topup#1"
        blocked = record.blocked.get(step)
        assert blocked is not None and blocked.manual, record.blocked
        assert blocked.intent is not None and blocked.intent.details.order_id is None
        first = record.transfers["twolines-topup#0"]
        orders = [t for t in rig.state()["transfers"] if t["specialUid"] == uid and t["direction"] == "OUT"]
        assert [t["orderId"] for t in orders] == [first.order_id] and orders[0]["status"] == "SUCCESS", orders

        # KuCoin: "one transfer of 100 USDT to that sub-account, SUCCESS" — the operator names it
        with contextlib.suppress(OperatorError):  # the fix: O is line #0's
            settle_transfer(rig.app, ref, step, committed=True, order_id=first.order_id, who="oncall", note="KuCoin")
        rig.settle(ref)

        paid = paid_to(rig, uid)
        told = outbound_of(rig, "funding.completed")
        assert len(told) <= len(paid), (
            f"{len(paid)} transfer(s) of 100 USDT, {len(told)} lines told completed: "
            f"{[(e['key'], e['order_id']) for e in told]}"
        )
    finally:
        rig.close()
