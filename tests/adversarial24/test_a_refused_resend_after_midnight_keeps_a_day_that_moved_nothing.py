"""7ac5bd6/3d8be61 keep the intent of a refused send that may repeat a lost one and, the ledger silent, block it for
an operator, counted in doubt. The intent's ``days`` are then the lost send's *and the refused re-send's*
(``resolve_transfer`` reserves the re-send's day before sending it). Before these commits the refusal released
them; now they are held until the verdict, and ``operator._apply`` records a committed verdict with every day the
intent holds (``days=tuple(details.days)``) — nothing gives back the day of the re-send the exchange refused,
although the order the operator names shows when the money moved (``_counted_on_execution_day`` does exactly that
for the worker's own commits)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup, total
from tests.core.harness import Rig, events_for
from worker.provisioning.operator import settle_transfer

pytestmark = pytest.mark.redis

TRANSFER_PATH = "/api/v1/broker/nd/transfer"
DAY_MS = 86_400_000


class BalanceFirst(httpx.BaseTransport):
    """adv23's exchange: a repeated clientOid the Special Account's balance cannot cover is refused 400100 before
    the clientOid is looked at."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.inner = rig.transport.inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == TRANSFER_PATH:
            body = json.loads(request.content)
            state = self.rig.state()
            seen = any(t["clientOid"] == body["clientOid"] for t in state["transfers"])
            held = Decimal(state["broker"]["balances"]["MAIN"].get(body["currency"], "0"))
            if seen and held < Decimal(body["amount"]):
                return httpx.Response(200, json={"code": "400100", "msg": "account.available.amount"})
        return self.inner.handle_request(request)


def test_a_committed_verdict_keeps_the_reservation_of_a_refused_resend_after_midnight(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: adv23's (``dedupe``, an exchange that checks the balance before the clientOid, a ledger listing an
    hour late while the setting says 30 s); Special Account daily cap 1000 USDT, holding 250 USDT. At 23:50 X's
    250 USDT top-up is sent; it executes, the answer is lost. At 00:05 ``resolve_transfer`` re-sends it (reserving
    on the new day) and the exchange refuses it (the lost send took the balance); the ledger is silent: the line
    goes to an operator (the new behaviour). The on-call finds the order SUCCESS (made 23:50) and answers
    ``settle-transfer --committed --order-id <it>``. The Special Account is refilled; customer Y is approved with
    an 800 USDT line that day.

    What happens: the committed verdict records the line with ``days`` = (yesterday, today): today's cap counts 250
    USDT for a send the exchange refused. Y's 800 USDT line: 250 + 800 > 1000 → ``funding.refused`` ("the Special
    Account's daily cap of 1000 USDT would be exceeded (used 250)"), although nothing had moved today.

    Why wrong: a final refusal told upstream for a line that fits; the only send on today's day was refused, and the
    verdict's order (checked against the exchange by ``_agrees_with_the_order``) says when the money moved.

    Suggested fix: on a committed verdict whose order the exchange shows (``shown``), count the line on its
    execution day only, as ``_counted_on_execution_day`` does (release the others unless the line may have been
    paid twice); or, when a refused re-send keeps its intent, release the days only the refused send reserved.

    Likelihood: low (a lost answer minutes before midnight, then the refused re-send path, a day near its cap);
    impact: lines that fit refused for good, told upstream.
    """
    config = SandboxConfig.from_dict(
        {
            "duplicate_client_oid": "dedupe",
            "ledger_lag_ms": 3_600_000,
            "initial_balances": {"MAIN": {"USDT": "250"}, "TRADE": {}},
        }
    )
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000",
    )
    rig.transport.inner = BalanceFirst(rig)
    try:
        ref, uid = onboard_with_a_key(rig, "midnight-x")
        now = int(rig.clock() * 1000)
        rig.clock.advance_ms(now // DAY_MS * DAY_MS + DAY_MS - 10 * 60_000 - now)  # 23:50 UTC
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("midnight-x", "t1", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        assert total(paid_to(rig, uid)) == Decimal(250), paid_to(rig, uid)
        (order,) = paid_to(rig, uid)
        rig.clock.advance_ms(15 * 60_000)  # 00:05 the next day
        today = datetime.fromtimestamp(rig.clock(), tz=UTC).strftime("%Y%m%d")
        rig.settle(ref)
        blocked = rig.record(ref).blocked.get("fund:midnight-x-t1#0")
        assert blocked is not None and blocked.manual, rig.record(ref).blocked

        settle_transfer(
            rig.app, ref, "fund:midnight-x-t1#0", committed=True, order_id=str(order["orderId"]), who="oncall"
        )
        rig.settle(ref)
        assert "midnight-x-t1#0" in [e["key"] for e in outbound_of(rig, "funding.completed")]
        used_today = rig.app.ledger.used(day=today, currency="USDT")

        broker = rig.state()["broker"]["uid"]
        rig.exchange.credit(broker, "USDT", "MAIN", "2000")  # the Special Account is refilled
        ev_y = events_for("midnight-y", funding=(("USDT", "800"),))
        ref_y, _ = rig.publish(ev_y["created"], ev_y["kyc"])
        rig.settle(ref_y)

        refused = [(e["key"], e.get("reason")) for e in outbound_of(rig, "funding.refused")]
        assert not refused, f"today's cap counts {used_today} USDT with nothing moved today; refused: {refused}"
    finally:
        rig.close()
