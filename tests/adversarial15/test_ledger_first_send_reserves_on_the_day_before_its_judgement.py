"""``money_steps.transfer`` takes ``now`` once, at the start of the step, and reserves the daily cap on the days
``reservation_days(details.days, now, reach_ms=lock ttl)`` names — but a line of a recovered customer is judged by
the ledger first (``evidence_first``, under ``unknown``/``accept``), and that judgement reads the ledger and then
Get Transfer History for every unknown ledger entry of the line's amount (up to ``MAX_ORDER_LOOKUPS`` = 300 reads,
each renewing the lock): the intent is committed and the transfer sent long after ``now``. 20078c0 made a send
within the lock's time-to-live and the skew of midnight reserve on both days; a send whose judgement started more
than that before midnight reserves on the old day only and is executed on the new one.

Scenario: daily cap 5000 USDT, default ``unknown`` clientOid setting. Customer A's record is restored by a
rollback (``recover`` with the upstream's heard list); A's top-up of 100 USDT (asked at 10:30, before the loss) is
looked for (not found) and waits for the re-publication. That afternoon the Special Account pays thirty other
top-ups of 100 USDT (to other customers). At 23:58:50 the re-publication is declared and A's line is sent, the
ledger first: the judgement reads the thirty transfers' histories, at 2.5 s a read (a loaded exchange; each read
renews the lock), and the send leaves at 00:00:05 on 2026-11-19. It reserved only 2026-11-18 (23:58:50 + 45 s
lock + 15 s skew is before midnight). A's confirm reads SUCCESS. A minute later customer B's top-up of 4950 is
decided on 2026-11-19.

What happens: the new day's cap shows 0 used, B is paid: the exchange shows 5050 USDT out of the Special Account on
2026-11-19 against a cap of 5000. ``_counted_on_execution_day`` never counts A's 100 on the day it executed
either: a ledger-first send has ``recheck_from_ms`` set, and the function returns at once for such a line ("keeps
every reservation") — skipping the ``missing`` day that 20078c0 added for exactly this case.

Why it is wrong: README "Money limits": no sequence may exceed the Special Account's per-UTC-day cap; 20078c0's
promise is that a send that may reach the exchange after midnight reserves on both days before it is sent.

Suggested fix: in ``transfer``, compute the reservation days (and ``sent_ms``/``day``) from the clock *after* the
ledger-first judgement (``_reserve(ctx, details, ctx.now_ms())``), as ``resolve_transfer`` already does; and in
``_counted_on_execution_day`` count a ``missing`` execution day (``cap=None``) even when ``recheck_from_ms`` is set
(only the release of spare days needs the one-send guard).

Likelihood in production: needs a line sent ledger-first (a recovered customer's line from before the declared
re-publication, under ``unknown``/``accept``) decided in the minute or two before midnight while the judgement is
slow — a busy broker
paying a standard amount hundreds of times a month makes 300 history reads per run (~60 s at 200 ms a read). Rare,
but the overshoot is silent and bounded only by the line's amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import httpx

from tests.adversarial.helpers import onboard_with_a_key, restore_state, snapshot_state, stamped_now, topup, total
from tests.core.harness import Clock, Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.exchange.models import AccountType, Direction
from worker.recovery import declare_republished, recover

DAY_CAP = "USDT=5000,BTC=10,ETH=50,USDC=5000,KCS=1000"
CUSTOMER_CAP = "USDT=10000,BTC=1,ETH=5,USDC=10000,KCS=1000"


@dataclass
class SlowHistory(httpx.BaseTransport):
    """The simulator, each Get Transfer History answered ``latency_ms`` after it was asked while armed."""

    inner: httpx.BaseTransport
    clock: Clock
    latency_ms: int
    armed: bool = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.armed and request.method == "GET" and request.url.path == "/api/v3/broker/nd/transfer/detail":
            self.clock.advance_ms(self.latency_ms)
        return self.inner.handle_request(request)


def _at(hour: int, minute: int, second: int, day: int = 18) -> float:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_a_ledger_first_send_decided_before_midnight_and_sent_after_passes_the_new_days_cap(
    redis_url: str, key_prefix: str
) -> None:
    caps = {"PROVISIONER_FUNDING_CAP_PER_DAY": DAY_CAP, "PROVISIONER_FUNDING_CAP_PER_CUSTOMER": CUSTOMER_CAP}
    rig = Rig(redis_url, key_prefix, **caps)
    try:
        ref_a, _uid_a = onboard_with_a_key(rig, "slow-a")
        snapshot = snapshot_state(rig)
        _ref_g, uid_g = onboard_with_a_key(rig, "slow-g")  # written after the snapshot: the restore is a rollback
        restore_state(rig, snapshot)
        app = second_host(rig, same_host=True)
        try:
            # the upstream's heard list is given: a line not found is sent (no operator asked)
            report = recover(app, reason="test: restored from a snapshot", heard=[], heard_complete=True)
            assert report.detected.startswith("rolled_back"), report
            ev_a = events_for("slow-a", funding=())
            redeliver(app, [ev_a["created"], ev_a["kyc"]])
            settle_with(rig, app, ref_a)
            ev_b = events_for("slow-b", funding=())
            ref_b = redeliver(app, [ev_b["created"], ev_b["kyc"]])
            settle_with(rig, app, ref_b)
            assert app.store.load(ref_a).recovered_at_ms is not None  # type: ignore[union-attr]
            assert app.store.load(ref_b).recovered_at_ms is None  # type: ignore[union-attr]

            # A's top-up asked at 10:30, before the loss, re-published: looked for (not found), then held until
            # the re-publication is declared
            rig.clock.now = _at(12, 30, 0)
            line_a = topup("slow-a", "topup", 30, [("USDT", "100")])
            assert redeliver(app, [line_a]) == ref_a
            settle_with(rig, app, ref_a)
            record_a = app.store.load(ref_a)
            assert record_a is not None and record_a.looked_for and not record_a.transfers, record_a

            # the afternoon's other top-ups of 100 USDT (to G's sub-account: unknown to A's record)
            rig.clock.now = _at(13, 0, 0)
            for n in range(30):
                app.exchange.transfers.transfer(
                    currency="USDT",
                    amount=Decimal("100"),
                    direction=Direction("OUT"),
                    account_type=AccountType("MAIN"),
                    special_uid=uid_g,
                    special_account_type=AccountType("TRADE"),
                    client_oid=f"other-topup-{n:02d}",
                )
                rig.clock.advance_ms(60_000)

            rig.exchange.update_config({"transfer_processing_ms": 30_000})
            slow = SlowHistory(rig.transport.inner, rig.clock, latency_ms=2_500)
            rig.transport.inner = slow
            rig.clock.now = _at(23, 58, 50)
            declare_republished(app)  # A's line is sent now, the ledger first (it may have been paid before)
            slow.armed = True
            app.reconciler.run(ref_a)  # the ledger judged (30 history reads), sent, PROCESSING
            slow.armed = False
            record_a = app.store.load(ref_a)
            assert record_a is not None
            (entry_a,) = record_a.transfers.values()
            assert entry_a.status.value == "accepted", entry_a

            settle_with(rig, app, ref_a)  # confirmed: SUCCESS, createdAt on 2026-11-19
            record_a = app.store.load(ref_a)
            assert record_a is not None
            (entry_a,) = record_a.transfers.values()
            assert entry_a.status.value == "committed", entry_a

            rig.clock.advance_ms(60_000)
            assert redeliver(app, [stamped_now(rig, "slow-b", "topup", [("USDT", "4950")])]) == ref_b
            settle_with(rig, app, ref_b)

            midnight = int(_at(0, 0, 0, day=19) * 1000)
            out = [t for t in rig.state()["transfers"] if t["direction"] == "OUT" and t["status"] != "FAILURE"]
            a_sent = [t for t in out if t["specialUid"] == _uid_a]
            assert a_sent and a_sent[0]["createdAt"] >= midnight, a_sent  # A's send left after midnight
            day2 = [t for t in out if t["createdAt"] >= midnight]
            assert total(day2) <= 5000, (
                f"paid {total(day2)} USDT on 2026-11-19 against a daily cap of 5000 (A's line holds "
                f"{entry_a.days} only)"
            )
        finally:
            app.close()
    finally:
        rig.close()
