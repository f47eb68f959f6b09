"""a1ee17a bounds the search for a refusal in doubt by the refusal ("a refusal in doubt was paid, if at all, by a
retry after it, within what the ledger can still show": ``_look_since``). The bound is lost the moment the on-call
does what the refusal asks for — ``provisioner customer retry``: ``redecide`` drops the REFUSED entry, the line is
"unsettled" again, and ``_transfer`` (``evidence_first`` while the line ``_maybe_lost``) searches the ledger from
the line's first possible send (``_earliest_send``: its ``occurred_at``), unbounded. Where a repeated clientOid
executes again (``accept``) that search decides the send; for a line asked for more than 31 days ago it answers
UNDECIDED and the line is blocked for an operator instead of being sent.

Scenario: ``accept``, default ledger, the Special Account's daily cap 1000 USDT. Day D: customer W is paid 900;
customer X asks for 600 USDT (line A): refused by the daily cap. Nobody retries. Forty days later Redis is
snapshotted, another customer onboarded, Redis restored from the snapshot; ``provisioner recover``; X's events are
re-published and declared. A (a restored daily-cap refusal) is looked for from the refusal within 31 days: not
found, it stands (a1ee17a's path, no operator). The on-call then runs ``customer retry`` for X.

What happens: A is decided again, fits both caps, and ``_transfer`` searches the ledger from A's ``occurred_at`` (40
days back): "the first possible send is too long ago to search the ledger" → ``fund:A`` blocked, manual, asking the
on-call to check ten clientOids with KuCoin. X is not paid; the on-call's own retry becomes their ticket.

Why it is wrong: the same line was judged unpaid by the ledger a minute earlier (``looked_for``), and a redecidable
refusal is decided before any send (``client_oid`` None): nothing of A can have moved before the refusal, and the
search since the refusal found nothing. README guarantee 7 (an operator only where the exchange cannot tell).

Suggested fix: ``redecide`` keeps the floor the refusal gives (e.g. ``earlier_sends[key]`` / a ``searched_from``
= the refusal's ``at_ms`` or the look's window start), and ``_transfer``/``_window_start`` search from it rather than
from ``_earliest_send`` for a line already ``_looked`` in this epoch.

How likely: every retry, in the ``accept`` configuration, of a cap refusal of a line asked for more than 31 days
before, between a loss and the moment its line stops being "maybe lost" — i.e. for lines asked for before the
declaration, always. Pre-existing for a retried line (also before a1ee17a); a1ee17a's bound does not survive it.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.adversarial.helpers import onboard_with_a_key, paid_to, restore_state, snapshot_state, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.provisioning.reconciler import StepsBlocked
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


@pytest.mark.xfail(
    strict=True,
    reason="adv12: a retried refusal older than the ledger's window goes to an operator (a clamped search paid twice:"
    " adv13)",
)
def test_retrying_an_old_cap_refusal_after_a_rollback_sends_it(redis_url: str, key_prefix: str) -> None:
    rig = Rig(
        redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="accept", PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000"
    )
    try:
        ref_w, _uid_w = onboard_with_a_key(rig, "or-w")
        rig.publish(topup("or-w", "t", 4, [("USDT", "900")]))
        rig.settle(ref_w)
        ref_x, uid_x = onboard_with_a_key(rig, "or-x")
        line_a = topup("or-x", "topup-a", 5, [("USDT", "600")])
        rig.publish(line_a)
        rig.settle(ref_x)
        assert rig.record(ref_x).transfers["or-x-topup-a#0"].status.value == "refused"

        rig.clock.advance_ms(40 * DAY_MS)
        snapshot = snapshot_state(rig)
        onboard_with_a_key(rig, "or-y")  # writes after the snapshot: the restore is a rollback
        rig.app.state.check()
        restore_state(rig, snapshot)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot")
            assert report.detected.startswith("rolled_back"), report
            ev = events_for("or-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line_a])
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            for _ in range(2):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            record = app.store.load(ref_x)
            assert record is not None and "or-x-topup-a#0" in record.looked_for, "looked for, not found: it stands"
            assert not record.blocked, record.blocked

            with contextlib.suppress(StepsBlocked):  # what it blocked is asserted below
                app.reconciler.run(ref_x, retry_blocked=True)  # `provisioner customer retry`
            for _ in range(2):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            record = app.store.load(ref_x)
            assert record is not None
            asked = {k: b.reason.split("outcome unknown")[-1][:90] for k, b in record.blocked.items() if b.manual}
            assert not asked, f"the retry of a refusal the ledger just found unpaid asks an operator: {asked}"
            assert [t["amount"] for t in paid_to(rig, uid_x)] == ["600"]
        finally:
            app.close()
    finally:
        rig.close()
