"""``money_steps._count_again`` counts a line's second payments on the line's first day (``entry.day``: the day of
its first send by our clock), whatever day they executed on. adv25 named it in passing (its test failed on
``_on_execution_day``, fixed in d3e1d42/e1b985e); ``_count_again`` is unchanged. With a send near midnight the line
holds both days (``reservation_days``) and keeps both (``recheck_from_ms``), once each: when both payments executed
after midnight the new day counts one of them, and the old day counts two although nothing moved on it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import all_paid, onboard_with_a_key, outbound_of, paid_to, set_faults, topup, total
from tests.core.harness import Rig, events_for

pytestmark = pytest.mark.redis

DAY_MS = 86_400_000
TRANSFER_PATH = "/api/v1/broker/nd/transfer"


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y%m%d")


class OnTheWireAtMidnight(httpx.BaseTransport):
    """The first transfer request reaches the exchange ``delay_ms`` after it left (the clock moves on while it is
    on the wire): sent before midnight, it executes after."""

    def __init__(self, rig: Rig, delay_ms: int) -> None:
        self.rig = rig
        self.inner = rig.transport.inner
        self.delay_ms = delay_ms

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.delay_ms and request.method == "POST" and request.url.path == TRANSFER_PATH:
            self.rig.clock.advance_ms(self.delay_ms)
            self.delay_ms = 0
        return self.inner.handle_request(request)


def test_a_second_payment_after_midnight_is_counted_on_the_day_before(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe`` while the exchange executes repeats (``accept``: the
    README's "settings the exchange contradicts"); Special Account daily cap 1000 USDT. At 23:59:57 X's 400 USDT
    top-up is sent; the request is on the wire for 4 s (within the reach ``reservation_days`` covers: the
    line reserves yesterday and today) and executes at 00:00:01; its answer is lost. After the settle delay it is
    re-sent under its clientOid (dedupe: the re-send is the evidence); the exchange executes it again and answers.
    The recheck finds the second payment: ``double:`` block, exchange distrusted, ``_count_again``. Later that
    day customer Y is approved with a 500 USDT line.

    What happens: the line holds one reservation on each day (``_counted_on_execution_day`` keeps both, the line may
    have been sent twice); ``_count_again`` adds the second payment on ``entry.day`` — yesterday, the day of the
    first send by our clock. Today's cap counts 400 although 800 moved today; Y's 500 fits (400 + 500 <= 1000) and
    is sent: 1300 USDT left the Special Account today against a cap of 1000. Yesterday counts 800 with nothing
    moved on it.

    Why it is wrong: README "What the exchange leaves undecidable" promises "The second payment counts on the
    per-customer cap and on its day's Special Account cap ... so no later top-up is sent into the room it took";
    the day a payment executed on is the one the cap is about (the design reserves both days around midnight for
    exactly this reason).

    Suggested fix: ``recheck_transfer`` knows the second payments' ledger rows (their ``created_at``): have
    ``count_second_payments`` return them and reserve each on ``utc_day(row.created_at)`` (``<line>:again`` per
    day); where it cannot tell (``extra is None``), reserve on every day the line holds.

    Likelihood: low (a lost answer of a send on the wire at midnight, under a wrong clientOid setting); impact: the
    daily cap overrun by the line's amount, nothing flagged about the cap.
    """
    config = SandboxConfig.from_dict(
        {"duplicate_client_oid": "accept", "initial_balances": {"MAIN": {"USDT": "5000"}, "TRADE": {}}}
    )
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "wire-x")
        now = int(rig.clock() * 1000)
        rig.clock.advance_ms(now // DAY_MS * DAY_MS + DAY_MS - 3_000 - now)  # 23:59:57 UTC
        yesterday = _day(int(rig.clock() * 1000))
        rig.transport.inner = OnTheWireAtMidnight(rig, 4_000)
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("wire-x", "t1", 5, [("USDT", "400")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        today = _day(int(rig.clock() * 1000))
        assert today != yesterday
        assert [_day(int(t["createdAt"])) for t in paid_to(rig, uid)] == [today], paid_to(rig, uid)
        rig.settle(ref)
        assert total(paid_to(rig, uid)) == Decimal(800), paid_to(rig, uid)
        assert {_day(int(t["createdAt"])) for t in paid_to(rig, uid)} == {today}
        assert rig.record(ref).transfers["wire-x-t1#0"].extra_paid == 1, rig.record(ref).transfers
        assert any(str(e.get("step")).startswith("double:") for e in outbound_of(rig, "provisioning.failed"))
        counted = {d: rig.app.ledger.used(day=d, currency="USDT") for d in (yesterday, today)}

        ev_y = events_for("wire-y", funding=(("USDT", "500"),))
        ref_y, _ = rig.publish(ev_y["created"], ev_y["kyc"])
        rig.settle(ref_y)

        moved_today = total([t for t in all_paid(rig) if _day(int(t["createdAt"])) == today])
        assert moved_today <= 1000, (
            f"{moved_today} USDT moved out of the Special Account today against a cap of 1000 (the caps counted "
            f"{counted} after the second payment was found, all of it on {today})"
        )
    finally:
        rig.close()
