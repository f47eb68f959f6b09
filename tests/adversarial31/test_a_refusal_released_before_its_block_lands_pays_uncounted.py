"""A first send the exchange refuses gives its day's reservation back (``money_steps._refused``: ``_release``) and
only then blocks the line (``fail`` → the fenced commit that clears the intent). The two are separate Redis writes:
a process that dies between them (or a commit that fails: a Redis blip, a lost lease) leaves the pending intent as
it was — ``details.days`` still naming the day — while the day no longer holds the reservation. Under ``dedupe`` or
``reject`` the intent is settled by re-sending it (``resolve_transfer``), and ``_reserve`` reserves only the days the
intent does not list already: none. The re-send pays with nothing counted on the day."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from handlers.daily_cap import utc_day
from sandbox import SandboxConfig
from tests.adversarial.helpers import all_paid, onboard_with_a_key, paid_to, topup, total
from tests.core.harness import Crash, Rig

pytestmark = pytest.mark.redis

BROKER_UID = "165111215"


@pytest.mark.parametrize("mode", ["dedupe", "reject"])
def test_a_refused_send_whose_block_never_landed_is_resent_without_a_reservation(
    redis_url: str, key_prefix: str, mode: str
) -> None:
    """
    Scenario: a correctly configured deployment (``PROVISIONER_CLIENT_OID_BEHAVIOUR`` = the exchange's ``dedupe`` or
    ``reject``; the ledger within its lag), Special Account daily cap 1000 USDT. The Special Account runs low (300
    USDT in MAIN). Customer X's 400 USDT top-up: the intent is recorded with today's reservation (400 of 1000) and
    sent; KuCoin refuses it (400100 insufficient balance). ``_refused`` gives today's reservation back, and the
    worker dies before the commit that blocks the line (or that commit fails on a Redis blip). On-call refills the
    Special Account. The worker comes back: the pending intent is settled as ``dedupe``/``reject`` settle it, by
    re-sending it under its clientOid. Then customer Y's 700 USDT top-up, the same day.

    What happens: the re-send's ``_reserve`` skips the day the intent already names (``reservation_days`` excludes
    ``details.days``) although that reservation was released: X's 400 USDT are paid with nothing counted on the
    day. The day's cap counts 0, so Y's 700 USDT pass it: 1100 USDT left the Special Account on a day capped at 1000.

    Why it is wrong: "never a Special Account daily cap exceeded" — under correct settings, with no operator
    involved, from a crash between two writes (the design's premise: "a worker may die at any line").

    Suggested fix: release a refused line's reservations in the same commit that clears its intent (a release
    rider, as reservations are riders of the intent's commit), or have every send re-assert the reservations its
    intent lists (``ledger_reserve`` is idempotent per line), not only the days it does not list yet.

    Likelihood: low (a refused first send — the Special Account running dry is the everyday cause — and a crash or
    failed commit in the instant after the release); impact: the Special Account's daily cap silently exceeded by
    the line's amount.
    """
    config = SandboxConfig.from_dict(
        {
            "duplicate_client_oid": mode,
            "initial_balances": {"MAIN": {"USDT": "300"}, "TRADE": {}},
        }
    )
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_CLIENT_OID_BEHAVIOUR=mode,
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000",
    )
    try:
        ref_x, uid_x = onboard_with_a_key(rig, "dry-x")
        ref_y, uid_y = onboard_with_a_key(rig, "dry-y")
        today = utc_day(int(rig.clock() * 1000))

        ledger = rig.app.ledger
        release = ledger.release
        crashes: list[Any] = []

        def die_at_the_release(*, day: str, line: str) -> bool:
            if not crashes:
                crashes.append(line)
                raise Crash(f"the process dies as it releases {line} on {day}")
            return release(day=day, line=line)

        ledger.release = die_at_the_release  # type: ignore[method-assign]
        rig.publish(topup("dry-x", "t1", 5, [("USDT", "400")]))
        with pytest.raises(Crash):
            rig.run(ref_x)  # intent (today reserved), send, 400100 insufficient balance, block, dies at the release
        ledger.release = release  # type: ignore[method-assign]
        # the fix (the block first, then the release): the intent is gone with the block, the reservation is kept
        # (the day counts 400 that did not move: too much, never too little)
        assert rig.record(ref_x).pending is None and rig.record(ref_x).blocked, rig.record(ref_x)
        assert rig.app.ledger.used(day=today, currency="USDT") == Decimal(400)

        rig.exchange.credit(BROKER_UID, "USDT", "MAIN", "5000")  # on-call refills the Special Account
        rig.clock.advance_ms(60_000)  # the worker is back; the customer's lock has expired
        rig.settle(ref_x)
        rig.app.reconciler.run(ref_x, retry_blocked=True)  # the on-call retries the refused line: paid once
        rig.settle(ref_x)
        assert total(paid_to(rig, uid_x)) == Decimal(400), paid_to(rig, uid_x)
        assert rig.app.ledger.used(day=today, currency="USDT") == Decimal(400)

        rig.publish(topup("dry-y", "t1", 6, [("USDT", "700")]))
        rig.settle(ref_y)

        on_day = [t for t in all_paid(rig) if utc_day(int(t["createdAt"])) == today]
        counted = rig.app.ledger.used(day=today, currency="USDT")
        assert total(on_day) <= Decimal(1000), (
            f"{total(on_day)} USDT paid out on {today} against a daily cap of 1000 (X {total(paid_to(rig, uid_x))}, "
            f"Y {total(paid_to(rig, uid_y))}); the day's cap counts {counted}"
        )
    finally:
        rig.close()
