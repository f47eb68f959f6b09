"""3b7fe24 routes every refusal the planner makes of a line whose earlier send may have paid (``earlier_sends``)
through ``money_steps._refused_unsent``, which blocks it for an operator "unless an operator said the line never
moved" (``details.operator_unsent``: the clientOid is in ``unsent_by_operator``). An operator's ``--not-committed``
speaks of the sends made before it; the worker then sends the line again under the same clientOid on that word, and
that re-send is a new send that may pay. ``unsent_by_operator`` keeps the clientOid until a commit, so when the
re-send's answer is lost and a ledger slower than its bound stays silent, the line's next refusal is told
``funding.refused`` blind — on the strength of a verdict about an earlier send."""

from __future__ import annotations

from decimal import Decimal

import pytest

from handlers.daily_cap import utc_day
from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Rig, events_for
from worker.provisioning.operator import settle_transfer

pytestmark = pytest.mark.redis

HOUR_MS = 3_600_000


def test_a_resend_made_on_an_operators_word_is_told_refused_at_offboarding(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown`` (the default), an exchange that executes a repeated
    clientOid, a ledger listing entries 10 minutes late while ``PROVISIONER_LEDGER_LAG_MS`` says 60 s (the
    premise of adv21/23/26/27 and of d40fbb5/3b7fe24's fix). Customer X's 400 USDT top-up is accepted (order O1)
    and stays PROCESSING for over an hour: blocked for an operator. O1 then ends FAILURE; the on-call answers the
    block as it asks, ``settle-transfer fund:LINE --not-committed`` — checked by the command against O1's status,
    so the verdict is right. The worker sends the line again under the same clientOid (README: "An operator's first
    --not-committed re-sends under the same clientOid"); the exchange executes it (order O2, SUCCESS, 400 USDT to
    X), its answer is lost. The upstream offboards X a moment later.

    What happens: after the settle delay the ledger is silent (10 minutes late): "not committed", the line back in
    ``earlier_sends``. The offboarding's plan hands the line to the transfer step with the refusal (3b7fe24), but
    the clientOid is still in ``unsent_by_operator``, so ``_refused_unsent`` takes ``operator_unsent`` for "no
    operator doubt" and calls ``refuse_funding``: ``funding.refused`` ("offboarded before this line was funded"),
    today's reservation released. The sweep then moves O2's 400 back and ``customer.offboarded`` reports it swept —
    for a line the upstream was told was never funded. Nothing is searched again or flagged.

    Why it is wrong: funding.refused iff the transfer does not exist — O2 exists, SUCCESS. The operator's word was
    about O1 (and was right); nobody said anything of O2, the worker's own send made after the verdict. README:
    "A line the worker would refuse without sending it — ... the customer offboarded — is not told
    funding.refused while an earlier send of it may have paid: it is blocked for an operator's settle-transfer";
    here it is told, silently, in the very misconfiguration the README promises is never silent.

    Suggested fix: an operator's not-committed covers the sends made before it only: once the line is sent again on
    it, the exemption ends — e.g. ``resolve_transfer``'s not-committed path (and ``_send`` of a re-send under an
    ``operator_unsent`` intent) drops the clientOid from ``unsent_by_operator``, or the record keeps when the
    verdict was given and ``_refused_unsent`` refuses blind only if no send of the line followed it.

    Likelihood: low (a transfer stuck PROCESSING then FAILED, the re-send's answer lost, a ledger slower than its
    bound, an offboarding within the settle window); impact: ``funding.refused`` told for money that moved, the
    money swept back as if it had been the customer's, the day's cap under-counted.
    """
    config = SandboxConfig.from_dict(
        {
            "duplicate_client_oid": "accept",
            "ledger_lag_ms": 600_000,
            "transfer_processing_ms": 2 * HOUR_MS,
            "transfer_failure_share": 1.0,
            "initial_balances": {"MAIN": {"USDT": "5000"}, "TRADE": {}},
        }
    )
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown",
        PROVISIONER_LEDGER_LAG_MS="60000",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "word-x")
        rig.publish(topup("word-x", "t1", 5, [("USDT", "400")]))
        rig.settle(ref)  # accepted (O1), PROCESSING for an hour: blocked for an operator
        step = "fund:word-x-t1#0"
        blocked = rig.record(ref).blocked.get(step)
        assert blocked is not None and blocked.manual, rig.record(ref).blocked
        o1 = blocked.intent.details.order_id
        assert o1 is not None

        rig.clock.advance_ms(2 * HOUR_MS)  # O1 ends FAILURE: nothing moved
        assert paid_to(rig, uid) == []
        settle_transfer(rig.app, ref, step, committed=False, who="oncall", note=f"KuCoin: {o1} FAILURE")

        rig.exchange.update_config({"transfer_failure_share": 0.0, "transfer_processing_ms": 0})
        set_faults(rig, "transfer", drop=1.0)
        rig.run(ref)  # sent again under the same clientOid on the operator's word: paid (O2), the answer lost
        set_faults(rig, "transfer", drop=0.0)
        paid = [(t["clientOid"], t["status"], t["amount"]) for t in paid_to(rig, uid)]
        assert [p[1:] for p in paid] == [("SUCCESS", "400")], paid

        rig.publish(events_for("word-x")["offboard"])
        rig.settle(ref)

        refused = {e["key"]: e["reason"] for e in outbound_of(rig, "funding.refused")}
        offboarded = outbound_of(rig, "customer.offboarded")
        today = utc_day(int(rig.clock() * 1000))
        assert "word-x-t1#0" not in refused, (
            f"told funding.refused ({refused.get('word-x-t1#0')}) for a line whose transfer is {paid}; offboarded: "
            f"{offboarded}; today's cap counts {rig.app.ledger.used(day=today, currency='USDT')}"
        )
        assert rig.app.ledger.used(day=today, currency="USDT") >= Decimal(400)
    finally:
        rig.close()
