"""7e048f4 says of a restored redecidable refusal: "found nothing, the refusal stands with no operator asked and
nothing new told". The search it starts (``LookForTransfer``) covers the ledger from the line's first possible send
(its event's ``occurred_at``) and answers UNDECIDED when that is more than 31 days ago (``LEDGER_MAX_WINDOW_MS``).
``look_for_transfer`` then blocks the line for an operator (``_undecided``), whatever ``ask_if_unfound`` says. So
after every rollback each customer holding a cap refusal older than 31 days is blocked, manual, for an operator,
and the customer's later lines of the currency wait behind it.

Scenario: ``dedupe``, default ledger, per-customer cap 1000 USDT. Customer X is paid 900 (line P) and asks for a 600
USDT top-up (line A): refused by the per-customer cap. Nobody retries it (the cap was never raised). Forty days
later Redis is snapshotted; another customer is onboarded; Redis is restored from the snapshot; ``provisioner
recover``; X's events are re-published and the on-call declares it.

What happens: the audit keeps A's refusal; ``_funding`` looks for it (``_unsettled_or_restored``); the ledger search
is "too long ago" → UNDECIDED → ``fund:A`` is blocked, manual, asking an operator to check ten clientOids with
KuCoin (``provisioning.failed``, alert ``CustomersBlocked``). X's USDT funding waits until the on-call answers.

Why it is wrong: the commit's own promise (no operator asked for a restored refusal found unpaid) and README
guarantee 7 (an operator is asked only where the exchange cannot tell). The exchange can tell here: the line was
refused before any send (``client_oid`` None), so it can only have been paid after that refusal, by a retry — which
happens no earlier than the refusal's ``at_ms`` and, for a snapshot's refusal, after the snapshot's newest write.
The search need not reach the line's ``occurred_at``.

Suggested fix: search a restored redecidable refusal from its refusal's ``at_ms`` (or the record's newest write:
the snapshot's time), not from the line's first possible send; only if that too is beyond the ledger's span, ask.
Alternatively skip the search when the refusal's cause still holds under today's settings for every retry since
(the per-customer cap still full).

How likely: certain after any rollback for every customer with a cap refusal older than 31 days (campaigns refuse
many lines by the per-customer cap); each costs an operator's manual verdict and holds the customer's funding.
"""

from __future__ import annotations

from tests.adversarial.helpers import onboard_with_a_key, restore_state, snapshot_state, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


def test_a_rollback_asks_an_operator_about_a_forty_day_old_cap_refusal(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe")
    try:
        ref, _uid = onboard_with_a_key(rig, "old-x")
        line_p = topup("old-x", "topup-p", 4, [("USDT", "900")])
        line_a = topup("old-x", "topup-a", 5, [("USDT", "600")])
        rig.publish(line_p)
        rig.settle(ref)
        rig.publish(line_a)
        rig.settle(ref)
        assert rig.record(ref).transfers["old-x-topup-a#0"].status.value == "refused"

        rig.clock.advance_ms(40 * DAY_MS)
        snapshot = snapshot_state(rig)
        onboard_with_a_key(rig, "old-y")  # writes after the snapshot: the restore is a rollback
        rig.app.state.check()
        restore_state(rig, snapshot)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot")
            assert report.detected.startswith("rolled_back"), report
            ev = events_for("old-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line_p, line_a])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            for _ in range(2):
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)
                rig.clock.advance_ms(600_000)
            record = app.store.load(ref)
            assert record is not None
            asked = {k: b.reason[:90] for k, b in record.blocked.items() if b.manual}
            assert not asked, f"an operator is asked about a line refused 40 days ago and never retried: {asked}"
        finally:
            app.close()
    finally:
        rig.close()
