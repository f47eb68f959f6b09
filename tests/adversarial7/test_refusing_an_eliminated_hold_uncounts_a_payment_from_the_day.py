"""94cf506 holds a transfer tied to a line by elimination for an operator and counts it on today's cap under that
line (``_count_today``: "the transfer moved money today, whoever's line it is"). The operator's ``--refused``
(what the hold asks for when the upstream heard a refusal) releases the line's reservations
(``settle_transfer``). When the look-for ran before the re-seed at the moment (both are due at the same time:
the recovery plus the settle delay), the re-seed's max(ledger, day) absorbed the transfer into that very
reservation: releasing it leaves a payment that moved today counted nowhere."""

from __future__ import annotations

import shutil
from decimal import Decimal

from sandbox import SandboxConfig
from tests.adversarial.helpers import all_paid, onboard_with_a_key, outbound_of, paid_to, topup, total
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.recovery import declare_republished, recover


def test_refusing_a_line_held_by_elimination_lets_another_customer_past_the_daily_cap(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: daily cap 1000 USDT, per-customer cap 1000 USDT; the ledger lists a transfer 10 minutes after it
    (the worker knows the lag). Customer E's top-up A1 (600 USDT) is paid, A2 (600 USDT) refused (heard). Redis
    loses everything; ``provisioner recover`` (no ``--heard``) seeds the day from a ledger that does not list A1's
    transfer yet. The upstream re-publishes creation, approval and A2; the on-call declares the re-publication
    (early: A1 is a straggler). At the moment, A2 is looked for, tied to A1's transfer by elimination and held for
    an operator (94cf506), counted on today's cap. The operator asks the upstream, which heard A2 refused, and
    settles A2 ``--refused`` — exactly as the hold says. Meanwhile another customer W was paid 100 USDT; a new
    customer Z then asks for 900 USDT; A1 comes later.

    What happens: the hold reserved 600 under A2 before the re-seed (W's line asked for it), which kept
    max(ledger 600, day 600) = 600: A1's transfer is counted only through A2's reservation; W makes it 700.
    ``--refused`` releases A2's 600: the day counts 100 while 700 left the Special Account today. Z's 900 USDT
    fits: paid. 1600 USDT left today, daily cap 1000.

    Why it is wrong: the daily cap must hold after a loss (the README's "never less than was paid"; 6e66652 makes
    every line wait for the re-seed for it). An operator's verdict that a line moved nothing must not un-count a
    transfer the ledger lists: the hold's count is of the transfer, not of the line, and must outlive a
    ``--refused`` (or the re-seed must add what the ledger lists beyond the lines it can tie)."""
    config = SandboxConfig.from_dict({"ledger_lag_ms": 600_000})
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000",
        PROVISIONER_LEDGER_LAG_MS="600000",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "elim-day")
        ev = events_for("elim-day", funding=())
        a1 = topup("elim-day", "topup-a1", 5, [("USDT", "600")])
        a2 = topup("elim-day", "topup-a2", 6, [("USDT", "600")])
        rig.publish(a1, a2)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["600"]
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["elim-day-topup-a2#0"]
        rig.clock.advance_ms(60_000)

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: Redis restarted without persistence")
            assert not report.seeded, report  # the ledger does not list A1's transfer yet
            ref = redeliver(app, [ev["created"], ev["kyc"], a2])
            declare_republished(app, stamps_kept=True)  # early: A1 is still in the upstream's queue
            settle_with(rig, app, ref)
            record = app.store.load(ref)
            assert record is not None and "fund:elim-day-topup-a2#0" in record.blocked, sorted(record.blocked)

            ev_w = events_for("elim-day-w", funding=(("USDT", "100"),))  # another customer, meanwhile: seeds the day
            ref_w = redeliver(app, [ev_w["created"], ev_w["kyc"]])
            settle_with(rig, app, ref_w)

            # the upstream heard A2 refused before the loss: the operator says so, as the hold asks
            settle_transfer(app, ref, "fund:elim-day-topup-a2#0", verdict=TransferVerdict.REFUSED, who="oncall")
            settle_with(rig, app, ref)

            ev_z = events_for("elim-day-z", funding=(("USDT", "900"),))
            ref_z = redeliver(app, [ev_z["created"], ev_z["kyc"]])
            settle_with(rig, app, ref_z)
            rig.clock.advance_ms(10 * 60_000)
            redeliver(app, [a1])
            settle_with(rig, app, ref)

            moved = total(all_paid(rig))
            assert moved <= Decimal(1000), f"{moved} USDT left the Special Account today, daily cap 1000"
        finally:
            app.close()
    finally:
        rig.close()
