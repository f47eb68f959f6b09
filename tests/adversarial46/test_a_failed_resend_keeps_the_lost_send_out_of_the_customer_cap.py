"""A funding line whose re-send FAILED while its earlier, lost send may have paid is kept "in doubt" for the daily
caps and the second-payment search (9022fcd), but not for the per-customer cap: a later top-up of the same currency
is sent at once, and the customer ends up funded above ``PROVISIONER_FUNDING_CAP_PER_CUSTOMER``.

Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe`` while the exchange in fact executes a repeated clientOid (the
README's own hedge; adv44a's scenario). Customer C's cap is 1000 USDT. Top-up A of 600 USDT is sent; the exchange
executes it (O1) and the answer is lost. The re-send under the same clientOid becomes a new order O2, which FAILS:
``_failed`` now keeps A's day reservations and ``earlier_sends[A]`` (the block says "the caps keep counting it") and
blocks ``fund:A`` for an operator's retry (a plain, non-manual block without an intent). Before on-call looks, the
upstream sends top-up B of 600 USDT.

What happens: the planner decides B against the per-customer cap with ``moved`` = committed lines (0) and
``in_doubt`` = ``CustomerRecord.in_doubt()`` — accepted transfers, the pending intent and *manual* blocks only. A is
none of these (its transfer was forgotten, its block is not manual), so B is SEND: 1200 USDT reach a customer capped
at 1000, without any block, wait or refusal. (When the operator later retries A, the cap refuses it and the
operator is asked — but B's 600 have moved already.)

Why it is wrong: ``cap_decision``: "counting every line that may have moved money … so no sequence of verdicts
exceeds the cap"; README: "The caps count every line that may have moved money". A's earlier send may have moved
money — that is exactly why 9022fcd keeps its reservations — and the block tells the operator "the caps keep
counting it"; the per-customer cap does not.

Suggested fix: count a line in ``earlier_sends`` whose fund step is blocked (or, generally, any ``earlier_sends``
line not recorded as committed/refused) as in doubt in ``CustomerRecord.in_doubt()`` (or in ``_funding``'s
``doubt``), so later lines of its currency WAIT until the operator's retry or verdict settles it; equivalently make
``_failed``'s block a manual one that keeps the intent (as ``_refused_unsent`` does).

Likelihood in production: low — it needs the wrong ``dedupe``/``reject`` setting, a lost answer and the repeat
failing; but then the per-customer cap (the money bound the upstream relies on) is exceeded silently by up to a full
line, whenever a second top-up arrives before on-call retries the blocked line.
"""

from __future__ import annotations

import pytest

from handlers import steps
from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, topup, total
from tests.core.harness import Crash, Rig


def test_a_failed_resend_lets_a_later_topup_exceed_the_per_customer_cap(redis_url: str, key_prefix: str) -> None:
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "accept"}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
        PROVISIONER_FUNDING_CAP_PER_CUSTOMER="USDT=1000,BTC=1,ETH=5,USDC=1000,KCS=100",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "adv46-cap")
        rig.publish(topup("adv46-cap", "a", 30, [("USDT", "600")]))
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="after")
        with pytest.raises(Crash):
            rig.run(ref)  # O1 executed (600 USDT paid); its answer is lost with the process
        assert total(paid_to(rig, uid)) == 600

        rig.exchange.update_config({"transfer_failure_share": 1.0})  # the repeat is a new order, which fails
        rig.settle(ref)
        record = rig.record(ref)
        line_a = "adv46-cap-a#0"
        assert steps.fund(line_a) in record.blocked, record.blocked
        assert line_a in record.earlier_sends, "9022fcd: the earlier send is kept as possibly paid"

        rig.exchange.update_config({"transfer_failure_share": 0.0})
        rig.publish(topup("adv46-cap", "b", 40, [("USDT", "600")]))  # a second top-up before on-call looks
        rig.settle(ref)

        paid = total(paid_to(rig, uid))
        assert paid <= 1000, f"{paid} USDT reached a customer capped at 1000 USDT (A's lost send was not counted)"
    finally:
        rig.close()
