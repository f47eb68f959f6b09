"""d4753ac: ``settle-transfer`` checks a verdict against the order's status only when the *block* names an order
(``TransferIntent.order_id``, set by ``_stuck``). A block the ledger could not decide (``_undecided``: a lost answer,
ledger entries without ids) names none — and the operator's own ``--order-id`` is recorded without being read.

Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown`` (the default), an exchange whose ledger entries carry no ids
(simulator ``ledger_context: none``), transfers PROCESSING for six hours and credited on completion
(``transfer_credit: on_completion``). Customer C's 250 USDT top-up is sent; the process dies before the answer. C is
offboarded. After the settle delay the ledger shows an anonymous debit of 250: undecided, an operator's block; the
sweep moves C's balances (0 USDT: the credit has not come) back. The on-call does what the block says — asks KuCoin
for the transfer's status, finds C's order (Special Account debited, PROCESSING) — and answers ``settle-transfer
--committed --order-id <that order>``.

What happens: the verdict is taken (the order's status is never read, though the operator named it), the snapshot
is dropped, the balances read again (still 0), and C is closed. Five hours later the transfer completes: 250 USDT
land in the sub-account of a closed customer whose record no longer sweeps.

Why it is wrong: README guarantee 6 (closed only when the balances read after the last movement of money into it
are back); the adv15 fix (a committed verdict is taken only once the order shows SUCCESS) exists exactly for this,
and the worker holds the order id here too — given by the operator.

Suggested fix: in ``settle_transfer`` check ``order_id`` (the operator's) like ``details.order_id``: read it, require
it to be a transfer to this sub-account of this amount and currency, and take only the verdict its status allows; or
record such a committed line ACCEPTED with that order so ``confirm_transfer`` reads it to SUCCESS.

Likelihood: needs a lost answer, a ledger without ids (KuCoin does not document ``context``), a long PROCESSING
and credit on completion during an offboarding; the operator step is the one the block asks for. Rare, silent.
"""

from __future__ import annotations

import contextlib

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, topup, usdt_held
from tests.core.harness import Crash, Rig, events_for
from worker.provisioning.operator import OperatorError, settle_transfer


def test_a_committed_verdict_naming_a_processing_order_on_an_undecided_block_closes_before_the_credit(
    redis_url: str, key_prefix: str
) -> None:
    config = {"transfer_processing_ms": 6 * 3_600_000, "transfer_credit": "on_completion", "ledger_context": "none"}
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict(config))
    try:
        ref, uid = onboard_with_a_key(rig, "anon")
        rig.publish(topup("anon", "topup", 5, [("USDT", "250")]))
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="after")
        with pytest.raises(Crash):
            rig.run(ref)
        rig.publish(events_for("anon", funding=())["offboard"])
        for _ in range(4):
            rig.clock.advance_ms(15 * 60_000)
            rig.settle(ref)
        record = rig.record(ref)
        blocked = record.blocked.get("fund:anon-topup#0")
        assert blocked is not None and blocked.manual and record.closed_at_ms is None, (record.blocked, record)
        assert blocked.intent is not None and blocked.intent.details.order_id is None  # undecided: no order named
        assert usdt_held(rig, uid) == 0

        order = next(t for t in rig.state()["transfers"] if t["specialUid"] == uid and t["direction"] == "OUT")
        assert order["status"] == "PROCESSING", order
        with contextlib.suppress(OperatorError):  # refused while PROCESSING: the fix
            settle_transfer(
                rig.app, ref, "fund:anon-topup#0", committed=True, order_id=order["orderId"], who="oncall", note="debit"
            )
        rig.settle(ref)
        closed = rig.record(ref).closed_at_ms is not None

        rig.clock.advance_ms(5 * 3_600_000)  # the transfer completes: credited now
        assert usdt_held(rig, uid) == 250
        assert not closed, f"closed with {usdt_held(rig, uid)} USDT credited after the close (order {order['orderId']})"
    finally:
        rig.close()
