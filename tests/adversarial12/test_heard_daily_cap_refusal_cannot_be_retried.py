"""After a loss, a refusal recorded from what the upstream heard (``recover --heard``) keeps its cause only behind
``HEARD_REFUSAL_NOTE`` ("refused before our state was lost, as the upstream heard: <reason>"). a1ee17a reads the
reason behind that prefix (``may_have_been_taken_back``) and so treats a heard daily-cap refusal as one "a retry
takes back" — it is looked for in the ledger as if a retry may have paid it. But ``redecidable`` (what
``provisioner customer retry`` takes back) reads the note with ``refusal_cause``, which sees the prefix, not the cap:
cause OTHER. The line can never be retried again: refused for good by a cause that went away at midnight.

Scenario: ``dedupe``, default ledger, per-customer cap 1000 USDT, the Special Account's daily cap 1000 USDT. Day D:
customer W is paid 900; customer X (a key, nothing funded) asks for 600 USDT (line A): refused by the daily cap
(``funding.refused``, delivered). Redis loses everything (restart without persistence); ``provisioner recover
--heard received.jsonl`` (the events the upstream received); X's events are re-published; the on-call declares it.
Day D+1: the daily cap has room; the on-call runs ``provisioner customer retry`` for X (what the README tells them to
do for a daily-cap refusal).

What happens: A is looked for (a1ee17a: heard, redecidable cause), found unpaid, the refusal stands. The retry
takes nothing back (``redecidable`` is empty: cause OTHER); A stays refused; X is never paid; no new verdict.
Without the loss (or with a restored snapshot instead of ``--heard``) the same retry pays A.

Why it is wrong: handlers/refusals.py's contract (a refusal for a cause a setting or the calendar fixes "is not
refused for good: once the cause is fixed, ``provisioner customer retry`` ... takes the refusal back") and the
worker's own view of the same entry (``may_have_been_taken_back`` says REDECIDABLE, ``redecidable`` says OTHER).

Suggested fix: one reading of a refusal's cause: ``refusal_cause`` strips ``HEARD_REFUSAL_NOTE + ": "`` before
matching the prefixes (as ``may_have_been_taken_back`` does), so ``redecidable``/``redecide`` take a heard cap
refusal back like a recorded one (its retry gets the next ``refusal_identity``).

How likely: every Redis loss recovered with ``--heard`` (the README's recommended path) turns every daily-cap and
per-customer-cap refusal the upstream heard into a final one; the daily cap's refusals are the routine case. Money
is not lost, but customers the operator means to fund are not, silently (the retry journals nothing).
"""

from __future__ import annotations

from handlers.records import TransferStatus
from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


def test_a_heard_daily_cap_refusal_is_retried_the_next_day(redis_url: str, key_prefix: str) -> None:
    rig = Rig(
        redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe", PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000"
    )
    try:
        ref_w, _uid_w = onboard_with_a_key(rig, "hq-w")
        rig.publish(topup("hq-w", "t", 4, [("USDT", "900")]))
        rig.settle(ref_w)
        ref_x, uid_x = onboard_with_a_key(rig, "hq-x")
        line_a = topup("hq-x", "topup-a", 5, [("USDT", "600")])
        rig.publish(line_a)
        rig.settle(ref_x)
        received = [e for e in outbound(rig) if e["type"] in ("funding.completed", "funding.refused")]
        assert [(e["type"], e["key"]) for e in received if e["key"].startswith("hq-x")] == [
            ("funding.refused", "hq-x-topup-a#0")
        ]
        rig.app.state.check()

        lose_everything(rig)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: Redis lost everything", heard=outcomes_from_events(received))
            assert report.detected != "ok", report
            ev = events_for("hq-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line_a])
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            settle_with(rig, app, ref_x)
            record = app.store.load(ref_x)
            assert record is not None and record.transfers["hq-x-topup-a#0"].status is TransferStatus.REFUSED
            assert "hq-x-topup-a#0" in record.looked_for, "a1ee17a looked it up as a refusal a retry takes back"

            rig.clock.advance_ms(DAY_MS)  # day D+1: the daily cap has room again
            app.reconciler.run(ref_x, retry_blocked=True)  # `provisioner customer retry`
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            record = app.store.load(ref_x)
            assert record is not None
            held = record.transfers["hq-x-topup-a#0"]
            assert [t["amount"] for t in paid_to(rig, uid_x)] == ["600"], (
                f"the retry took nothing back: A is {held.status.value} ({held.note}); redecided {record.redecided}"
            )
        finally:
            app.close()
    finally:
        rig.close()
