"""2e85ed1: an operator's committed verdict on a block whose last send was refused keeps only the execution day of
the order the exchange shows (``operator._on_execution_day``) and releases every other day the intent holds
(``_recount_days``). That is right for a line sent once before the refused re-send (adv24 (3)). But the intent's
days may be those of several sends that executed: with a lost answer after midnight too, the line was paid on both
days, and the order the operator names is only one of them. ``_counted_on_execution_day`` — the worker's own rule
this copies — keeps every reservation when the line may have been sent more than once (``recheck_from_ms``);
``_on_execution_day`` ignores ``details.earlier_send_ms``. The recheck the verdict schedules counts a second
payment it finds on the line's first day (``_count_again``: ``entry.day``), not on the day it executed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import all_paid, onboard_with_a_key, outbound_of, paid_to, set_faults, topup, total
from tests.core.harness import Rig, events_for
from worker.provisioning.operator import settle_transfer

pytestmark = pytest.mark.redis

DAY_MS = 86_400_000


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y%m%d")


def test_a_committed_verdict_releases_the_day_a_lost_resend_paid_on(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe`` while the exchange executes repeats (``accept``), a
    ledger listing an hour late; Special Account daily cap 1000 USDT, holding 500 USDT. At 23:50 X's 250 USDT
    top-up is sent: it executes, the answer is lost. At 00:05 it is re-sent (reserving the new day): it executes
    too, the answer lost again. The next re-send is refused (balance 0); the ledger is silent: a manual block. The
    on-call finds the order made at 23:50 under the line's clientOid and answers ``settle-transfer --committed
    --order-id <it>``. The Special Account is refilled; customer Y is approved with an 800 USDT line that day.

    What happens: ``_on_execution_day`` keeps yesterday only and releases today's reservation: today's cap counts 0
    although 250 USDT moved today (the 00:05 re-send). Y's 800 USDT line is sent: 1050 USDT moved out of the Special
    Account today against a cap of 1000. (The recheck, when it finds the second payment, reserves it on yesterday,
    the line's ``day``.)

    Why wrong: the intent's days are those of every send; a committed verdict naming one order proves when that
    send paid, not that the others did not. Before 2e85ed1 today's reservation was kept.

    Suggested fix: in ``_on_execution_day`` keep every day when ``details.earlier_send_ms`` (or ``sends > 1``)
    says the line may have been sent more than once, as ``_counted_on_execution_day`` does for
    ``recheck_from_ms``; and make ``_count_again`` reserve on the day each found payment executed.

    Likelihood: low (two lost answers across midnight under a wrong clientOid setting, then a refusal); impact:
    the daily cap overrun.
    """
    config = SandboxConfig.from_dict(
        {
            "duplicate_client_oid": "accept",
            "ledger_lag_ms": 3_600_000,
            "initial_balances": {"MAIN": {"USDT": "500"}, "TRADE": {}},
        }
    )
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "twoday-x")
        now = int(rig.clock() * 1000)
        rig.clock.advance_ms(now // DAY_MS * DAY_MS + DAY_MS - 10 * 60_000 - now)  # 23:50 UTC
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("twoday-x", "t1", 5, [("USDT", "250")]))
        rig.run(ref)
        assert total(paid_to(rig, uid)) == Decimal(250), paid_to(rig, uid)
        rig.clock.advance_ms(15 * 60_000)  # 00:05 the next day
        today = _day(int(rig.clock() * 1000))
        for _ in range(5):  # the re-send executes, its answer lost too
            rig.run(ref)
            if total(paid_to(rig, uid)) >= 500:
                break
            rig.clock.advance_ms(30_000)
        set_faults(rig, "transfer", drop=0.0)
        assert total(paid_to(rig, uid)) == Decimal(500), paid_to(rig, uid)
        first = min(paid_to(rig, uid), key=lambda t: int(t["createdAt"]))
        assert _day(int(first["createdAt"])) != today
        rig.settle(ref)
        blocked = rig.record(ref).blocked.get("fund:twoday-x-t1#0")
        assert blocked is not None and blocked.manual, rig.record(ref).blocked

        settle_transfer(
            rig.app, ref, "fund:twoday-x-t1#0", committed=True, order_id=str(first["orderId"]), who="oncall"
        )
        rig.settle(ref)
        assert "twoday-x-t1#0" in [e["key"] for e in outbound_of(rig, "funding.completed")]
        used_today = rig.app.ledger.used(day=today, currency="USDT")

        broker = rig.state()["broker"]["uid"]
        rig.exchange.credit(broker, "USDT", "MAIN", "2000")  # the Special Account is refilled
        ev_y = events_for("twoday-y", funding=(("USDT", "800"),))
        ref_y, _ = rig.publish(ev_y["created"], ev_y["kyc"])
        rig.settle(ref_y)

        moved_today = total([t for t in all_paid(rig) if _day(int(t["createdAt"])) == today])
        assert moved_today <= 1000, (
            f"{moved_today} USDT moved out of the Special Account today against a cap of 1000 (the cap counted "
            f"{used_today} after the verdict)"
        )
    finally:
        rig.close()
