"""``money_steps._send`` treats a refusal as evidence that nothing moved unless the send is a re-send of a pending
intent (``resend``) or evidence-first. A line the ledger judged not committed (``resolve_transfer``: its answer was
lost, the ledger silent at the settle delay) is sent again under the *same* clientOid as an ordinary first send,
although the code itself records it as one that may repeat a lost send (``earlier_sends``: "should the ledger have
been slower than its bound, the double is searched for later"). The module's own table says such a refusal is "no
evidence either way (the exchange may check the balance before the clientOid): the ledger decides"."""

from __future__ import annotations

from decimal import Decimal

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of, paid_to, set_faults, topup, total
from tests.core.harness import Rig, events_for
from worker.provisioning.operator import settle_transfer


def test_a_line_paid_before_a_refused_resend_is_told_refused(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown`` (the ledger decides lost transfers), an exchange that
    executes a repeated clientOid (``accept``) and checks the Special Account's balance, whose ledger lists entries
    10 minutes late while ``PROVISIONER_LEDGER_LAG_MS`` says 30 s (the misconfiguration the second-payment search
    exists for: "never silent"). The Special Account holds 250 USDT. Customer S's top-up of 250 USDT is sent; the
    exchange executes it, the answer is lost. At the settle delay the ledger is silent: not committed, the line is
    sent again under the same clientOid. The exchange refuses it: insufficient balance (the first send took it).
    Later the customer is offboarded.

    What happens: the refusal is taken as proof that nothing moved (``_refused``): the line's daily reservation is
    released, the line blocked "the exchange refused transfer ..." (not for an operator's verdict, so not counted in
    doubt; the day's cap then reads 0 USDT used), and at offboarding it is refused: ``funding.refused`` is emitted
    for a line whose 250 USDT reached the sub-account (the exchange shows the transfer SUCCESS under the line's
    clientOid); the sweep then moves the 250 back, but until then the customer held, could trade or withdraw, money
    the upstream is told it never got. No second-payment search ever
    runs (only a commit schedules one), so nothing flags the ledger's lag; nothing is distrusted.

    Why wrong: the upstream is told funding.refused for money that moved, and the daily cap forgets a transfer that
    executed. The send was one that may repeat a lost send — the worker recorded ``earlier_sends`` for exactly that
    — and for such a send the module's rule is that a refusal proves nothing and the ledger decides.

    Fixed: such a refusal keeps the intent (the ledger decides after the settle delay); a ledger still silent
    then sends the line to an operator, counted in doubt (``resolve_transfer``), instead of telling it refused.

    Suggested fix: in ``_send``, treat a PermanentError of a send with ``earlier_send_ms`` (or ``operator_unsent``)
    like one of a re-send: keep the intent with ``refused`` set, so ``resolve_transfer`` asks the ledger after the
    settle delay (which, here, then shows the first send: committed); the same holds after an operator's
    not-committed verdict, should the operator have been wrong.

    Likelihood: low (a ledger slower than its configured bound, or a wrong operator verdict, plus a balance-refused
    re-send); impact: funding.refused told for money that moved, unflagged, and the daily cap under-counted.
    """
    config = SandboxConfig.from_dict(
        {
            "duplicate_client_oid": "accept",
            "ledger_lag_ms": 600_000,
            "initial_balances": {"MAIN": {"USDT": "250"}, "TRADE": {}},
        }
    )
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ev = events_for("short-resend", funding=())
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("short-resend", "t1", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)
        assert total(paid_to(rig, uid)) == Decimal(250), paid_to(rig, uid)
        blocked = rig.record(ref).blocked.get("fund:short-resend-t1#0")
        assert blocked is not None and blocked.manual, "the refusal proves nothing: an operator decides"

        rig.publish(ev["offboard"])
        for _ in range(4):
            rig.settle(ref)
            rig.clock.advance_ms(15 * 60_000)

        refused = [e["key"] for e in outbound_of(rig, "funding.refused")]
        paid = [t["status"] for t in paid_to(rig, uid)]
        assert "short-resend-t1#0" not in refused, f"told funding.refused for a line whose transfer is {paid}"

        # the on-call reads the transfer's SUCCESS with KuCoin and says so: the upstream is told it was paid
        settle_transfer(rig.app, ref, "fund:short-resend-t1#0", committed=True, who="oncall", note="KuCoin: SUCCESS")
        for _ in range(4):
            rig.settle(ref)
            rig.clock.advance_ms(15 * 60_000)
        assert "short-resend-t1#0" in [e["key"] for e in outbound_of(rig, "funding.completed")]
        assert "short-resend-t1#0" not in [e["key"] for e in outbound_of(rig, "funding.refused")]
    finally:
        rig.close()
