"""f649513: ``settle_transfer`` skips the second-payment search when the order it reads was created before the
block's last send (``shown.created_at < details.sent_ms - LEDGER_SKEW_MS``: "a deduplicated repeat"). That is proof
of deduplication only when the order is the one the exchange *answered the repeat with* (``details.order_id``). An
order the operator names (``--order-id``, the block having none) that predates the repeat is simply the first send's
order: under an exchange that executes a repeated clientOid again, the repeat is a second payment."""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Rig
from worker.provisioning.operator import settle_transfer


def test_naming_the_first_sends_order_hides_the_repeats_second_payment(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown`` (the default until measured), an exchange that executes a
    repeated clientOid again (simulator ``accept``), ledger entries without ids, listing 2 minutes late, transfers
    PROCESSING for two hours. Customer D's 250 USDT line is sent; the answer is lost; the ledger is silent at the
    settle delay, so it is sent again (same clientOid); that answer is lost too. The exchange now holds two orders of
    250 to D's sub-account: A (the first send) and B (the repeat, 67 s later). The block asks the operator, with no
    order id of its own and ``earlier_send_ms`` set (a possible double). KuCoin shows A SUCCESS; the on-call answers
    ``settle-transfer --committed --order-id A``.

    What happens: ``_agrees_with_the_order`` accepts A (this line's sub-account, currency, amount; SUCCESS), and
    since A was created more than ``LEDGER_SKEW_MS`` before the repeat's send, ``repeat`` is true and
    ``search_for_double=False``: no recheck. B, a second payment of 250, is never flagged: no ``double:`` block, no
    ``provisioning.failed``. Before f649513 the committed entry was searched (``recheck_from_ms``).

    Why it is wrong: the search exists to make a possible double payment loud ("a committed line that may have been
    sent twice is searched"); the createdAt test proves a deduplicated repeat only for the order the exchange
    answered the repeat with — the worker's own ``confirm_transfer`` applies it to that answer only. An order older
    than the repeat, found by the operator, is exactly what the *first* send produced whether or not the repeat
    executed.

    Suggested fix: set ``repeat`` only when ``shown`` is the block's own ``details.order_id`` (the repeat's answer),
    or when the configured client-oid behaviour is ``dedupe``/``reject``; an operator-named order keeps the search.

    Likelihood: rare (two lost answers on one line, a slow ledger, a long PROCESSING, an exchange that executes a
    repeated clientOid); impact: 250 USDT paid twice and never reported.
    """
    config = {
        "duplicate_client_oid": "accept",
        "ledger_context": "none",
        "ledger_lag_ms": 120_000,
        "transfer_processing_ms": 2 * 3_600_000,
    }
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict(config), PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "twice")
        set_faults(rig, "transfer", drop=1.0)  # every answer lost: the request itself executes
        rig.publish(topup("twice", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        for _ in range(4):
            rig.settle(ref)
            rig.clock.advance_ms(20 * 60_000)
        set_faults(rig, "transfer", drop=0.0)
        step = "fund:twice-topup#0"
        blocked = rig.record(ref).blocked.get(step)
        assert blocked is not None and blocked.manual and blocked.intent is not None, rig.record(ref).blocked
        details = blocked.intent.details
        assert details.order_id is None and details.earlier_send_ms and details.sent_ms  # type: ignore[union-attr]
        orders = sorted(
            (t for t in rig.state()["transfers"] if t["specialUid"] == uid and t["direction"] == "OUT"),
            key=lambda t: t["createdAt"],
        )
        assert len(orders) == 2, f"the repeat executed again: {orders}"
        rig.clock.advance_ms(2 * 3_600_000)
        assert len(paid_to(rig, uid)) == 2, "two payments of 250"

        settle_transfer(
            rig.app, ref, step, committed=True, order_id=orders[0]["orderId"], who="oncall", note="KuCoin: SUCCESS"
        )
        for _ in range(6):
            rig.settle(ref)
            rig.clock.advance_ms(30 * 60_000)

        flagged = [s for s in rig.record(ref).blocked if str(s).startswith("double")] + [
            e["step"] for e in outbound_of(rig, "provisioning.failed") if str(e["step"]).startswith("double")
        ]
        assert flagged, f"250 USDT paid twice ({[o['orderId'] for o in orders]}), nothing flagged"
    finally:
        rig.close()
