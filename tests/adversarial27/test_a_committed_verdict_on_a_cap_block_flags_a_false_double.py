"""d40fbb5 blocks for an operator a re-send that a cap turns away while an earlier send of the line may have paid
(``money_steps._refused_unsent``): the block's intent is the re-send's — never sent — but it carries
``earlier_send_ms``. ``operator.settle_transfer --committed`` treats any block with ``earlier_send_ms`` as "a line
that may have been sent twice" and schedules the second-payment search (``recheck_from_ms``). Here there was one
send only: the search finds that send's own ledger entry, under the line's clientOid and an orderId the verdict did
not name, and counts it as a second payment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, slow_ledger_rig, topup
from worker.provisioning.operator import settle_transfer

pytestmark = pytest.mark.redis

DAY_MS = 86_400_000


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y%m%d")


def test_a_committed_verdict_on_a_cap_block_flags_the_only_payment_as_a_double(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: adv26's, after d40fbb5: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown``, a ledger listing 10 minutes late
    while ``PROVISIONER_LEDGER_LAG_MS`` says 60 s, Special Account daily cap 1000 USDT. At 23:59:30 X's 400 USDT
    top-up is sent; it executes, its answer is lost. After midnight Y is paid 700. At the settle delay the ledger
    is silent ("not committed"); the re-send is turned away by today's cap, and — the fix — blocked for an operator
    instead of refused. 20 minutes later the on-call looks: KuCoin shows the one transfer under the line's clientOid,
    SUCCESS. They answer the block as it asks: ``provisioner customer settle-transfer ID fund:LINE --committed``
    (``--order-id`` is optional: "KuCoin's orderId, when known").

    What happens: the committed entry is given ``recheck_from_ms`` (the block's ``earlier_send_ms``) and searched
    at once. The ledger now lists the line's single transfer, naming its clientOid under an orderId the entry does
    not hold: ``count_second_payments`` counts it as one more payment. The line gets a ``double:`` block,
    ``provisioning.failed`` with ``second_payments: 1`` goes to the upstream, every worker distrusts the exchange
    (``state trust`` needed), the per-customer cap counts the line twice (``extra_paid=1``) and yesterday's daily cap
    800 for the 400 that moved. The exchange shows exactly one transfer to X.

    Why it is wrong: the upstream is told the line was paid twice when it was paid once (and a ``--heard``
    recovery will count it twice again), the on-call is sent to claw back money that was never paid twice, and the
    caps refuse later lines that fit. The re-send the block stands for was never sent, so it cannot have paid again;
    the search should look for a payment beyond the first send, not count the first one.

    Suggested fix: a block made by ``_refused_unsent`` is of a send that never left: mark its intent unsent (e.g. no
    ``sent_ms``, or a flag), and in ``settle_transfer`` do not schedule the second-payment search for it (its one
    possible payment is the earlier send the verdict is about); or have the search treat the entry naming the
    verdict's clientOid as the line's own when the operator names no order (read it with Get Transfer History, as
    ``settle_transfer`` already does for a named order).

    Likelihood: low (adv26's premise: a ledger slower than its bound, a lost answer, a cap nearly full); when it
    happens the operator's natural answer triggers it. Impact: a false double-payment report to the upstream, a global
    distrust of the exchange (every lost transfer then goes to an operator), caps over-counted.
    """
    rig = slow_ledger_rig(
        redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000,BTC=10,ETH=50,USDC=1000,KCS=1000"
    )
    try:
        ref_x, uid_x = onboard_with_a_key(rig, "capped-x")
        ref_y, _ = onboard_with_a_key(rig, "capped-y")
        now = int(rig.clock() * 1000)
        rig.clock.advance_ms(now // DAY_MS * DAY_MS + DAY_MS - 30_000 - now)  # 23:59:30 UTC
        yesterday = _day(int(rig.clock() * 1000))
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("capped-x", "t1", 5, [("USDT", "400")]))
        rig.run(ref_x)
        set_faults(rig, "transfer", drop=0.0)
        rig.clock.advance_ms(40_000)  # 00:00:10
        rig.publish(topup("capped-y", "t1", 6, [("USDT", "700")]))
        rig.settle(ref_y)
        rig.settle(ref_x)
        step = "fund:capped-x-t1#0"
        blocked = rig.record(ref_x).blocked.get(step)
        assert blocked is not None and blocked.manual, rig.record(ref_x).blocked  # d40fbb5: blocked, not refused

        rig.clock.advance_ms(20 * 60_000)  # the on-call looks; KuCoin (and by now the ledger) shows one transfer
        paid = paid_to(rig, uid_x)
        assert [(t["status"], t["amount"], _day(int(t["createdAt"]))) for t in paid] == [("SUCCESS", "400", yesterday)]
        settle_transfer(rig.app, ref_x, step, committed=True, who="oncall", note="KuCoin: SUCCESS")
        for _ in range(4):
            rig.settle(ref_x)
            rig.clock.advance_ms(30 * 60_000)

        assert len(paid_to(rig, uid_x)) == 1  # still exactly one transfer to X
        record = rig.record(ref_x)
        doubles = [str(s) for s in record.blocked if str(s).startswith("double:")]
        told = [(e["step"], e.get("second_payments")) for e in outbound_of(rig, "provisioning.failed")]
        told_double = [t for t in told if str(t[0]).startswith("double:")]
        assert not doubles and not told_double, (
            f"one transfer of 400 USDT, flagged as paid twice: blocks {doubles}, told {told_double}; extra_paid="
            f"{record.transfers['capped-x-t1#0'].extra_paid}; exchange distrusted: "
            f"{rig.app.store.guard.distrust_reason() is not None}; yesterday's cap counts "
            f"{rig.app.ledger.used(day=yesterday, currency='USDT')}"
        )
    finally:
        rig.close()
