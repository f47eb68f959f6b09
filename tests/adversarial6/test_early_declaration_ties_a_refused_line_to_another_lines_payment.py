"""8b75a05 allows a transfer to be tied to a line by elimination (no other line explains it) once the on-call
declares the re-publication complete: "every line is known". Declared early — the upstream said it was done, but a
straggler of its re-publication comes later (the re-publication is unordered: ``redeliver``) — a line refused
before the loss and re-published before the line that was paid takes that line's transfer as its own: the
upstream is told ``funding.completed`` for a line it was told refused, under another line's orderId."""

from __future__ import annotations

import shutil

from tests.adversarial.helpers import onboard_with_a_key, outbound, outbound_of, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.recovery import declare_republished, recover


def test_an_early_declaration_tells_a_line_refused_before_the_loss_completed_with_another_lines_transfer(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: per-customer cap 1000 USDT, default exchange (ledger entries name the orderId only). Top-up A1
    (600 USDT) is paid; top-up A2 (600 USDT, a minute later) is refused by the cap (``funding.refused``, heard by
    the upstream). Redis loses everything; ``provisioner recover`` (no ``--heard``, the documented safe default).
    The upstream re-publishes creation, approval and A2 and says it is done; the on-call declares
    ``--republished --stamps-kept`` (every re-sent event kept its time: true). A1's re-publication, delayed in the
    upstream's queue, comes ten minutes later.

    What happens: A2 (maybe lost, stamped before the loss) is looked for from its ``occurred_at``: one 600 USDT
    transfer to the sub-account that no line we hold explains (A1's), no twin known, elimination allowed:
    COMMITTED. A2 is recorded paid under A1's orderId and the upstream told ``funding.completed`` for A2 — which
    it was told refused before the loss. A1 then comes: its transfer is "A2's" now, so A1 is not found and goes
    to an operator ("may have been refused before the loss"): the operator is asked about the one line that was
    paid, and the records say the refused one was.

    Why it is wrong: ``funding.completed`` iff the transfer exists *for that line*; the upstream hears at most one
    verdict per line and never contradictory ones. The declaration is the on-call's word about a third party's
    queue; being early must not turn into a false ``funding.completed`` (its blast radius is documented nowhere).
    A judgement by elimination can be kept revisable (or made only for lines whose refusal the recovery could
    not have lost: ``--heard``), rather than final on the declaration's say-so.

    What it does now: whose the transfer is cannot be read at the exchange (the ledger names only the orderId, and
    Get Transfer History names no clientOid): at A2's search it looks exactly like A2 paid alone. But had it been
    another line's, A2 would not have fit the per-customer cap — a refusal the worker itself would have made — and
    no outcomes heard by the upstream say otherwise, so A2 is held for an operator, shown A1's order, rather than
    told completed on the declaration's say-so; A1 then waits for an operator too."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "early")
        ev = events_for("early", funding=())
        a1 = topup("early", "topup-a1", 5, [("USDT", "600")])
        a2 = topup("early", "topup-a2", 6, [("USDT", "600")])
        rig.publish(a1, a2)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["600"]
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["early-topup-a2#0"]
        heard = outbound(rig.app)
        order_a1 = paid_to(rig, uid)[0]["orderId"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"], a2])
            settle_with(rig, app, ref)
            declare_republished(app, stamps_kept=True)  # early: A1 is still in the upstream's queue
            settle_with(rig, app, ref)
            rig.clock.advance_ms(10 * 60_000)
            redeliver(app, [a1])
            settle_with(rig, app, ref)

            told = {e["key"]: e.get("order_id") for e in heard + outbound(app) if e["type"] == "funding.completed"}
            record = app.store.load(ref)
            assert record is not None
            assert "early-topup-a2#0" not in told, (
                f"A2 (refused before the loss) told funding.completed under A1's order {told.get('early-topup-a2#0')}"
                f" (A1's is {order_a1}); blocks: {sorted(record.blocked)}"
            )
            held = record.blocked.get("fund:early-topup-a2#0")
            assert held is not None and held.manual and order_a1 in held.reason, (
                "A2 is held for an operator, shown the transfer it may or may not own"
            )
            assert "fund:early-topup-a2#0" in [e["step"] for e in outbound_of(app, "provisioning.failed")]

            # the operator, told by the upstream what it heard, settles both; nothing is sent again
            settle_transfer(app, ref, "fund:early-topup-a2#0", verdict=TransferVerdict.REFUSED, who="oncall")
            settle_transfer(app, ref, "fund:early-topup-a1#0", committed=True, order_id=order_a1, who="oncall")
            settle_with(rig, app, ref)
            told = {e["key"]: e.get("order_id") for e in outbound(app) if e["type"] == "funding.completed"}
            assert told == {"early-topup-a1#0": order_a1}
            assert [t["orderId"] for t in paid_to(rig, uid)] == [order_a1]
        finally:
            app.close()
    finally:
        rig.close()
