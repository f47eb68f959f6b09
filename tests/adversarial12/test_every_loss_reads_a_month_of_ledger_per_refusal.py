"""Since 7e048f4/a1ee17a every refusal a retry could take back is looked for after every loss of our state, each by
its own ``LookForTransfer``: one search of the Special Account's ledger per refused line, each from the refusal (at
most 31 days back) to now. KuCoin's ledger endpoint takes a 24-hour range per request (``ledger_entries`` pages day
by day), and the ledger is the whole Special Account's (every customer's transfers of the currency), so a refusal
older than a month costs at least 31 requests, and a customer with ten such refusals 310+ — for lines that share one
window, one sub-account and one currency, and whose answer one read would give for all.

Scenario: ``dedupe``, default ledger, per-customer cap 1000 USDT. Customer X is paid 1000 (line P), then over the
following days asks for ten more top-ups of 100 USDT: each refused by the per-customer cap (the cap is never
raised, nothing is retried). Forty days later Redis is snapshotted; another customer is onboarded; Redis is restored
from the snapshot; ``provisioner recover``; X's events are re-published and declared.

What happens: X's ten refusals are each looked for, each a 31-day read: the sandbox counts 330
``get_spot_ledger`` requests from ``recover`` on for this one customer (0 before 7e048f4 beyond the caps' seeding).

Why it is wrong: README, performance and the recovery's design (a search per line is bounded, the ledger is read
"about one request per day of range"): one loss makes a customer with many cap refusals cost hundreds of weighted
ledger requests (KuCoin's ledger limit is per Special Account, shared with every customer's recovery and with the
day-cap seeding), and the same month is re-read once per line. With thousands of capped customers a recovery runs
into 429s for hours. Before 7e048f4 these refusals cost nothing.

Suggested fix: look for a customer's refusals in doubt of one currency together: one ledger read from the oldest
refusal's bound, each line judged from the same rows (its clientOids, then elimination counting the others as
twins); or skip a per-customer-cap refusal whose cap has been full ever since (``funded`` ≥ cap with no retry
possible: ``redecided`` unchanged and the cap not raised).

How likely: certain on every loss for every customer with cap refusals; the budget asserted here (one month's read
for the customer, 2 × 32 requests) is what a shared read would cost.
"""

from __future__ import annotations

from tests.adversarial.helpers import onboard_with_a_key, restore_state, snapshot_state, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


def _ledger_requests(rig: Rig) -> int:
    requests = rig.state()["stats"]["requests"]
    return sum(int(n) for name, n in requests.items() if "ledger" in name.lower())


def test_a_loss_reads_the_ledger_once_per_refusal(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe")
    try:
        ref, _uid = onboard_with_a_key(rig, "pf-x")
        lines = [topup("pf-x", "topup-p", 4, [("USDT", "1000")])]
        rig.publish(lines[0])
        rig.settle(ref)
        for n in range(10):
            line = topup("pf-x", f"topup-{n}", 10 + n, [("USDT", "100")])
            lines.append(line)
            rig.publish(line)
            rig.settle(ref)
        refused = [k for k, t in rig.record(ref).transfers.items() if t.status.value == "refused"]
        assert len(refused) == 10

        rig.clock.advance_ms(40 * DAY_MS)
        snapshot = snapshot_state(rig)
        onboard_with_a_key(rig, "pf-y")  # writes after the snapshot: the restore is a rollback
        rig.app.state.check()
        restore_state(rig, snapshot)
        before = _ledger_requests(rig)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot")
            assert report.detected.startswith("rolled_back"), report
            ev = events_for("pf-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], *lines])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            for _ in range(2):
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)
                rig.clock.advance_ms(600_000)
            used = _ledger_requests(rig) - before
            record = app.store.load(ref)
            assert record is not None
            assert len(record.looked_for) == 10, record.looked_for
            assert used <= 2 * 32, f"{used} ledger requests for one customer's 10 refusals after one loss"
        finally:
            app.close()
    finally:
        rig.close()
