"""d4753ac: a stuck transfer's block names its order (``TransferIntent.order_id``) and ``settle-transfer`` reads that
order's status before taking a verdict. The operator's ``--order-id`` is then recorded and told to the upstream as
given: it is neither compared with the order the block names nor read. Left out, the line's known order is dropped.

Scenario: default settings, transfers PROCESSING for two hours. Customers A and B are each paid a 250 USDT top-up at
the same minute; both stay PROCESSING and are blocked for an operator at the hour (``_stuck``). At two hours both
show SUCCESS on KuCoin. The on-call settles A's block with ``--committed --order-id <B's order>`` (two rows of the
same amount and minute in KuCoin's transfer list; a copy-paste slip) — and B's without ``--order-id``.

What happens: both verdicts are taken (the status check reads the *block's* order, SUCCESS). A's line is recorded
committed under B's order and ``funding.completed`` tells the upstream that A was paid by B's transfer; B's line
loses its order id (``funding.completed`` with ``order_id`` null) though the block named it.

Why it is wrong: the upstream must hear the truth about the transfer that moved the money (funding.completed names
the order: it is what reconciles the two books); the worker knows the order of the line and lets an operator's typo
overwrite it. A wrong order in the record also misleads later ledger judgements of this customer (``known_order_ids``
holds B's order for A: A's own ledger entry is "unexplained" for a later line of the same amount, a false second
payment or a line judged paid by A's money).

Suggested fix: on a block that names an order, refuse an ``--order-id`` other than it, and record the block's
order when none is given (``order_id or details.order_id``).

Likelihood: operator slip on a rare block; the check that would catch it is one comparison away.
"""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, topup
from tests.core.harness import Rig
from worker.provisioning.operator import OperatorError, settle_transfer


def test_a_committed_verdict_records_another_order_or_drops_the_known_one(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict({"transfer_processing_ms": 2 * 3_600_000}))
    try:
        ref_a, uid_a = onboard_with_a_key(rig, "slip-a")
        ref_b, uid_b = onboard_with_a_key(rig, "slip-b")
        rig.publish(topup("slip-a", "topup", 5, [("USDT", "250")]))
        rig.publish(topup("slip-b", "topup", 5, [("USDT", "250")]))
        rig.settle(ref_a)
        rig.settle(ref_b)
        for _ in range(3):
            rig.clock.advance_ms(30 * 60_000)
            rig.settle(ref_a)
            rig.settle(ref_b)
        for ref in (ref_a, ref_b):
            assert any(b.manual for b in rig.record(ref).blocked.values()), rig.record(ref).blocked
        rig.clock.advance_ms(30 * 60_000)
        orders = {t["specialUid"]: t for t in rig.state()["transfers"] if t["direction"] == "OUT"}
        assert orders[uid_a]["status"] == orders[uid_b]["status"] == "SUCCESS"
        a_order, b_order = orders[uid_a]["orderId"], orders[uid_b]["orderId"]

        step_a = next(s for s, b in rig.record(ref_a).blocked.items() if b.manual)
        step_b = next(s for s, b in rig.record(ref_b).blocked.items() if b.manual)
        with pytest.raises(OperatorError, match="names another transfer"):  # the slip is caught
            settle_transfer(rig.app, ref_a, step_a, committed=True, order_id=b_order, who="oncall", note="SUCCESS")
        settle_transfer(rig.app, ref_a, step_a, committed=True, who="oncall", note="SUCCESS")
        settle_transfer(rig.app, ref_b, step_b, committed=True, who="oncall", note="SUCCESS")
        rig.settle(ref_a)
        rig.settle(ref_b)

        told = {e["customer_ref"]: e for e in outbound_of(rig, "funding.completed")}
        recorded = {ref: next(iter(rig.record(ref).transfers.values())).order_id for ref in (ref_a, ref_b)}
        assert (told[ref_a].get("order_id"), told[ref_b].get("order_id"), recorded) == (
            a_order,
            b_order,
            {ref_a: a_order, ref_b: b_order},
        ), f"A told/recorded {told[ref_a]}, B told {told[ref_b]}; A's order {a_order}, B's {b_order}"
    finally:
        rig.close()
