"""6b200b8 / a1ee17a clamp the search for a restored cap refusal in doubt to the ledger's 31 days (``_look_since``:
max(earliest send, refusal - 15 s, now - 31 d + 30 s)) and, once the line is ``looked_for``, the send of its retry to
the same window (``_send_search_since``). A retry that paid the line more than 31 days before the recovery lies
before both windows: the look answers "not found" (not "cannot tell"), the refusal stands unasked, and the next
``customer retry`` sends the line again.

Scenario: ``accept`` (the exchange executes a repeated clientOid; with dedupe the repeat is caught), daily cap
1000 USDT. Day 0: W paid 900; X's line A (600) refused by the daily cap; Redis snapshotted (a backup).
Day 1: ``customer retry`` for X pays A (600). Day 36: Redis restored from the day-0 backup (a rollback);
``provisioner recover`` without ``--heard`` (not known); X re-published, declared. A (a restored cap refusal)
is looked for from day 5 on: not found, it stands. The on-call runs ``customer retry``.

What happens: A is decided again, its send searches the ledger from day 5 (``_send_search_since``, already
looked for) and finds nothing: 600 is paid a second time (1200 for a 600 line).

Why it is wrong: README: a line "paid longer ago than its ledger can be searched" comes from the upstream or "goes
to an operator"; here the clamped window is read as proof of "unpaid". The window a refusal is searched in must
cover every moment a retry could have paid it; if it does not (refusal older than the ledger's 31 days), the
answer is "cannot tell".

Suggested fix: in ``_look_since`` / the look, when the refusal (``at_ms`` of a restored entry) is older than
``now - 31 d``, and nothing heard decides the line, treat the look as UNDECIDED (operator, or ``--heard``) rather
than "not found"; never set ``looked_for`` from a window clamped above the refusal; ``_send_search_since`` only
clamps when the look's window started at or before the refusal.

Introduced by 6b200b8: with ``since_ms=_earliest_send(...)`` (its parent) this test passes (the send's search
reaches too far back and asks an operator: adv12's cost complaint, but no double payment).

How likely: needs a rollback to a backup more than 31 days old (or a refusal restored from one) and no
``--heard``; rare, but the loss is a double payment, silent.
"""

from __future__ import annotations

import contextlib

from sandbox.config import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, restore_state, snapshot_state, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.provisioning.reconciler import StepsBlocked
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


def test_retry_paid_over_a_month_before_a_rollback_is_paid_again(redis_url: str, key_prefix: str) -> None:
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(duplicate_client_oid="accept"),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="accept",
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000",
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
        snapshot = snapshot_state(rig)

        rig.clock.advance_ms(DAY_MS)
        with contextlib.suppress(StepsBlocked):
            rig.app.reconciler.run(ref_x, retry_blocked=True)  # `provisioner customer retry`
        rig.settle(ref_x)
        assert rig.record(ref_x).transfers["or-x-topup-a#0"].status.value == "committed"
        assert [t["amount"] for t in paid_to(rig, uid_x)] == ["600"]

        rig.clock.advance_ms(35 * DAY_MS)
        rig.app.state.check()
        restore_state(rig, snapshot)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a month-old backup")
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
            assert record is not None
            assert "or-x-topup-a#0" in record.looked_for, "looked for from day 5 on: not found, the refusal stands"
            assert record.transfers["or-x-topup-a#0"].status.value == "refused" and not record.blocked

            with contextlib.suppress(StepsBlocked):
                app.reconciler.run(ref_x, retry_blocked=True)  # `provisioner customer retry`
            for _ in range(2):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            paid = [t["amount"] for t in paid_to(rig, uid_x)]
            assert paid == ["600"], f"line A (600) paid {paid}: the day-1 retry's payment lay before the window"
        finally:
            app.close()
    finally:
        rig.close()
