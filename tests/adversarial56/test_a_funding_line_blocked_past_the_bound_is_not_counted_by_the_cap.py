"""A funding line found not done on every send for ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS`` is blocked (f50cc22:
``blocks.not_done`` → ``fund:LINE``, not manual, no intent kept). Its earlier sends may have gone through — the line
is in ``earlier_sends`` precisely because the ledger's silence may be a ledger slower than its bound — but the
per-customer cap counts in doubt only accepted transfers, the pending intent and *manual* blocks
(``CustomerRecord.in_doubt``). The next line of the currency is sent into the room the blocked line may have used.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from handlers import steps
from sandbox import SandboxConfig
from tests.adversarial.helpers import paid_to, set_faults, topup, total
from tests.core.harness import Rig, events_for
from tests.provisioning.test_stuck_unknown import _drive

pytestmark = pytest.mark.redis

BOUND_S = 120
CAP = Decimal("1000")  # the rig's per-customer USDT cap


def test_a_funding_line_blocked_past_the_bound_is_not_counted_by_the_cap(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: the README's "Settings the exchange contradicts": the Special Account's ledger lists a transfer 10 min
    late while ``PROVISIONER_LEDGER_LAG_MS`` says 30 s (the clientOid setting is right). A customer's approval asks
    for 600 USDT (per-customer cap 1000). The transfer is executed but its answer is lost; each later send is
    answered 5xx (refused before anything is done). Each settle delay the ledger shows nothing yet, so the line is
    sent again under its clientOid (``earlier_sends`` notes that an earlier send may have paid), until
    ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS`` (here 2 min) passes: the line is blocked (``fund:LINE``, "left
    nothing done"). The exchange recovers; the customer asks for a 500 USDT top-up.

    What happens: the blocked line is neither pending nor a manual block, so ``in_doubt()`` leaves it out; the
    planner decides the top-up with moved 0, in doubt 0: 500 fits, it is sent and completes. The customer holds
    1 100 USDT from us against a cap of 1 000. Nothing flags it: the blocked line has no committed transfer to search
    for a second payment, the top-up has no earlier send; the line's block told the upstream "left nothing done".
    (The operator's retry later finds the line over the cap and asks for a verdict: the top-up is already paid.)

    Why it is wrong: README: the per-customer cap is never exceeded ("no sequence of verdicts exceeds the cap",
    ``cap_decision``); a line the worker would refuse while "an earlier send of it may have paid" is "blocked for an
    operator's settle-transfer, counted in doubt"; "a blocked funding line holds back only later lines whose cap it
    could use" — this one holds back none. Before f50cc22 the line was sent again at once and stood pending (in
    doubt) until the ledger showed its first send, so the top-up waited and was then refused.

    Suggested fix: count a fund line blocked by ``not_done`` in doubt (keep its intent in the block and include
    blocks of fund lines with ``earlier_sends`` in ``in_doubt``), or make that block manual (``settle-transfer``,
    shown the ledger) as for any line whose earlier send may have paid; and word its reason without "left nothing
    done" when the ledger's silence is the only evidence.

    Likelihood: low — needs a ledger slower than its setting (the README's own misconfiguration case) and a day (the
    default bound) of sends that all fail; the overrun is real money past the customer's cap, silently.
    """
    config = SandboxConfig(ledger_lag_ms=600_000)
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S))
    try:
        customer = "adv56-cap-blocked"
        ev = events_for(customer, funding=(("USDT", "600"),))
        (ref,) = rig.publish(ev["created"])
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        set_faults(rig, "transfer", drop=1.0)  # executed, answer lost
        rig.publish(ev["kyc"])
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0, **{"5xx": 1.0})  # every later send refused before anything is done
        _drive(rig, ref, for_ms=10 * BOUND_S * 1000, until_blocked=True)
        record = rig.record(ref)
        line = f"{ev['kyc']['id']}#0"
        assert steps.fund(line) in record.blocked and line in record.earlier_sends, "precondition: blocked past bound"
        assert total(paid_to(rig, uid)) == Decimal("600"), "precondition: the first send moved the money"

        set_faults(rig, "transfer", **{"5xx": 0.0})
        rig.publish(topup(customer, "topup", 5, [("USDT", "500")]))
        rig.settle(ref)
        rig.clock.advance_ms(900_000)  # the ledger lists the first send now
        rig.settle(ref)
        paid = total(paid_to(rig, uid))
        completed = [e["key"] for e in rig.outbound() if e["type"] == "funding.completed"]
        assert paid <= CAP, (
            f"{paid} USDT paid to the customer's sub-account against a per-customer cap of {CAP}: line {line} "
            f"(600, blocked past the bound with an earlier send that moved the money) was not counted in doubt, and "
            f"the top-up was sent (funding.completed told for {completed})"
        )
    finally:
        rig.close()
