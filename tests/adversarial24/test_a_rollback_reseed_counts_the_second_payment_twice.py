"""884f605 (adv21 fix) counts a second payment the recheck finds on its day's Special Account cap under a
reservation of its own, ``<ref>:<line>:again`` (``money_steps._count_again``). After a loss or a rollback
``provisioner recover`` (and the re-seed due after it, ``caps_steps.seed_caps_from_ledger``) seeds each day from
what the ledger lists *plus every reservation of a line our records do not show listed* (``_listed_lines`` ->
``listed_by_ledger(record.transfers.get(key))``). The ``:again`` line is parsed as the line key ``<line>:again``:
no transfer is recorded under that key, so it is "not listed" and counted on top — although the second payment it
stands for is, by construction, an entry the ledger already listed (the recheck found it there)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import (
    onboard_with_a_key,
    outbound_of,
    paid_to,
    restore_state,
    set_faults,
    snapshot_state,
    topup,
    total,
)
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.recovery import recover

pytestmark = pytest.mark.redis

DAY_CAPS = "USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000"


def test_a_rollback_reseed_counts_a_found_second_payment_twice_and_refuses_a_line_that_fits(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe`` while the exchange executes repeats (``accept``: the
    misconfiguration the recheck exists for, as in adv21); Special Account daily cap 1000 USDT. Customer X's 300
    USDT top-up is sent, the answer lost, the re-send pays again: 600 USDT moved today. The recheck finds it:
    ``double:`` block, and ``_count_again`` reserves ``<ref>:<line>:again`` (300): the day reads 600 — exact.
    Minutes later Redis is restored from a backup taken after that (another customer's writes since are lost):
    a rollback; ``provisioner recover``. Then customer Y is approved the same day with a 300 USDT line.

    What happens: the seed reads 600 USDT moved in the ledger (both payments: the recheck found them there) and
    adds the reservations whose line our records do not show listed: X's own line is listed (committed, its
    clientOid named), but ``<ref>:<line>:again`` is looked up as a transfer keyed ``<line>:again`` — none — so its
    300 counts on top: the day reads 900. Y's 300 USDT line is refused by the daily cap (``funding.refused``:
    "would be exceeded (used 900)") although 600 + 300 = 900 of 1000 moved would have been within it.

    Why wrong: an over-count that turns into a final ``funding.refused`` for a line that fits (same class as adv5's
    heard payment counted twice); the ``:again`` reservation is the one reservation the ledger is known to list.

    Suggested fix: in ``_listed_lines`` treat ``<key>:again`` as listed when the line's transfer has
    ``extra_paid`` and ``note`` says "paid more than once" (found in the ledger), keep it unlisted only for the
    "cannot tell" hedge; or store the ``:again`` reservation under a field the seed skips when the ledger names the
    line's clientOid.

    Likelihood: low (a double payment, then a rollback or loss-with-restore the same or next day, and a day near
    its cap); impact: lines that fit refused for good, told upstream.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(duplicate_client_oid="accept"),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
        PROVISIONER_FUNDING_CAP_PER_DAY=DAY_CAPS,
    )
    try:
        ref_x, uid_x = onboard_with_a_key(rig, "again-x")
        set_faults(rig, "transfer", drop=1.0)
        line_x = topup("again-x", "t1", 5, [("USDT", "300")])
        rig.publish(line_x)
        rig.run(ref_x)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref_x)
        assert total(paid_to(rig, uid_x)) == Decimal(600), paid_to(rig, uid_x)
        entry = rig.record(ref_x).transfers["again-x-t1#0"]
        assert entry.extra_paid == 1 and "double:again-x-t1#0" in rig.record(ref_x).blocked
        day = entry.day
        assert day is not None
        assert rig.app.ledger.used(day=day, currency="USDT") == Decimal(600)

        rig.clock.advance_ms(600_000)
        snapshot = snapshot_state(rig)
        onboard_with_a_key(rig, "again-w")  # writes after the snapshot: the restore is a rollback
        rig.app.state.check()
        restore_state(rig, snapshot)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a backup")
            assert report.detected.startswith("rolled_back"), report
            seeded = app.ledger.used(day=day, currency="USDT")

            ev_y = events_for("again-y", funding=(("USDT", "300"),))
            ref_y = redeliver(app, [ev_y["created"], ev_y["kyc"]])
            settle_with(rig, app, ref_y)
            rig.clock.advance_ms(1_800_000)
            app.due.schedule(ref_y, int(rig.clock() * 1000))
            settle_with(rig, app, ref_y)

            refused = [(e["key"], e.get("reason")) for e in outbound_of(app, "funding.refused")]
            assert not refused, f"day seeded at {seeded} USDT for 600 moved; a line that fits refused: {refused}"
        finally:
            app.close()
    finally:
        rig.close()
