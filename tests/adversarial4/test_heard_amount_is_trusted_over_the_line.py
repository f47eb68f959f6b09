"""``_seed_heard`` (audit_steps.py) records a heard ``funding.completed`` with the amount and currency *the file*
says, never comparing them with the funding line the event asked for nor with what the ledger shows paid
(``outcomes_from_events`` only checks the amount is a positive decimal). The per-customer cap then counts the
file's amount (``CustomerRecord.funded``): a heard completion that understates the line lets the cap be
overrun."""

from __future__ import annotations

import shutil
from decimal import Decimal

from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, topup, total, violations_after
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import recover


def test_a_heard_completion_with_another_amount_overruns_the_per_customer_cap(redis_url: str, key_prefix: str) -> None:
    """Scenario: per-customer cap 1000 USDT. Top-up A (600 USDT) is paid (``funding.completed`` amount "600").
    Top-up B (600 USDT) is accepted but not yet worked when Redis loses everything. The upstream's archive of what
    it received has A's completion with amount "60" (a mangled export — a dropped digit, a column of another
    line; the key, customer and currency are right). ``provisioner recover --heard`` takes it; the upstream
    re-publishes A and B.

    What happens: the audit records A committed for 60 USDT (evidence "upstream"), without looking at the line
    (600) or at the ledger, which lists the 600 USDT transfer under A's clientOid. B is looked for, found unpaid,
    and the cap sees 60 + 600 ≤ 1000: B is paid. 1200 USDT moved to a customer capped at 1000; ``verify`` reports
    "none above the caps".

    Why it is wrong: the caps hold after a loss too, and a heard outcome is a claim about a line the worker can
    check: its amount and currency must be the line's (else the file is refused, naming the line, like any other
    malformed field), or the record must carry the line's amount — never an unverified figure that the cap
    trusts over the exchange's ledger."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "heard-amount")
        ev = events_for("heard-amount", funding=())
        a = topup("heard-amount", "topup-a", 5, [("USDT", "600")])
        b = topup("heard-amount", "topup-b", 6, [("USDT", "600")])
        rig.publish(a)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["600"]
        heard = outbound(rig.app)
        mangled = [
            {**e, "amount": "60"} if e["type"] == "funding.completed" and e["key"] == "heard-amount-topup-a#0" else e
            for e in heard
        ]
        rig.publish(b)  # accepted, never worked
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            report = recover(
                app, reason="test: Redis restarted without persistence", heard=outcomes_from_events(mangled)
            )
            assert report.heard == 1
            published = [ev["created"], ev["kyc"], a, b]
            ref = redeliver(app, published)
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)
            app.due.schedule(ref, int(rig.clock() * 1000))
            settle_with(rig, app, ref)

            violations = violations_after(rig, app, published, heard)
            paid = total(paid_to(rig, uid))
            caps = [f"{v.invariant}: {v.detail}" for v in violations if v.invariant == "none above the caps"]
            assert paid <= Decimal(1000) and not caps, f"paid {paid} USDT to a customer capped at 1000: {caps}"
        finally:
            app.close()
    finally:
        rig.close()
