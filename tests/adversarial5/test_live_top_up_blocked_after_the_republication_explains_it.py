"""c8a3458 (adv4 break 6): a line asked for after the recovery whose look-for finds one transfer of its amount to
the sub-account that no line we hold explains is blocked for an operator: "likely a line paid before the loss
that the upstream has not re-published yet … Have the upstream re-publish the customer's events, then decide".
But the block leaves the new line in doubt, and the re-published pre-loss line's own look-for then cannot tell
its transfer from the (never sent) new line's: both wait for an operator, in the recovery's normal course."""

from __future__ import annotations

import shutil

from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import declare_republished, recover
from worker.store.outbound import rfc3339


def test_a_live_top_up_stays_blocked_after_the_republication_explains_the_transfer(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: default exchange (ledger entries name the orderId; repeats deduplicated); per-customer cap 1000
    USDT. Top-up A (100 USDT) is paid. Redis loses everything; ``provisioner recover`` (no ``--heard``: the
    documented safe default). The upstream re-publishes: creation and approval first (the record is audited);
    ten minutes later, before it reaches A, the customer asks for top-up B (100 USDT again, a live event). Then
    the re-publication reaches A (which, looked for alone, would be found paid: its transfer is the only one).

    What happens: B's look-for finds A's transfer (unknown orderId, to this sub-account, 100 USDT) and blocks B
    (``manual``), B's intent counted as in doubt. A is then re-published and looked for: its own transfer is the
    only candidate, but B — never sent — counts as a sibling of the same amount in doubt, so A's judgement is
    UNDECIDED ("cannot tell whose it is") and A is blocked for an operator too. Hours later both lines wait for
    a person, nothing is recorded of A, and the upstream has no verdict for B. The block's advice ("have the
    upstream re-publish the customer's events") cannot work: the re-publication has come and is itself blocked.

    Why it is wrong: the block's own reason is "not re-published yet"; the re-publication is the normal course of
    a recovery, not an operator's finding. Once the re-published line can explain the transfer, the new line must
    be decided on its own (looked for again, sent) — not left for a person, and a line that was never sent must
    not make the re-published line's own payment undecidable (operators asked needlessly, money not moving)."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "explained")
        ev = events_for("explained", funding=())
        a = topup("explained", "topup-a", 5, [("USDT", "100")])
        rig.publish(a)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["100"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")  # no --heard
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)

            rig.clock.advance_ms(10 * 60_000)
            now = rfc3339(int(rig.clock() * 1000))
            b = {**topup("explained", "topup-b", 0, [("USDT", "100")]), "occurred_at": now}
            assert isinstance(app.intake.accept(b), Accepted)
            settle_with(rig, app, ref)
            redeliver(app, [a])  # the re-publication reaches A
            settle_with(rig, app, ref)
            held = app.store.load(ref)
            assert held is not None and not held.blocked and not held.transfers, (
                "nothing decided before the declaration"
            )
            assert [t["amount"] for t in paid_to(rig, uid)] == ["100"]
            declare_republished(app, stamps_kept=True)  # the upstream's re-publication kept the events' own times
            for _ in range(3):
                rig.clock.advance_ms(3_600_000)
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)

            record = app.store.load(ref)
            assert record is not None
            a_key, b_key = "explained-topup-a#0", "explained-topup-b#0"
            a_held = record.transfers.get(a_key)
            pending = getattr(record.pending.details, "key", None) if record.pending is not None else None
            blocks = {step: blk.reason[:150] for step, blk in record.blocked.items()}
            paid = [t["amount"] for t in paid_to(rig, uid)]
            assert b_key in record.transfers and not blocks, (
                f"B still waits for an operator: {blocks}; pending intent of {pending}; the re-published A "
                f"{'recorded' if a_held is not None else 'never looked for (not recorded)'}; paid {paid}"
            )
        finally:
            app.close()
    finally:
        rig.close()


def test_without_kept_stamps_the_live_top_up_and_the_re_published_line_go_to_an_operator(
    redis_url: str, key_prefix: str
) -> None:
    """The same course, but the on-call cannot say the re-publication kept the events' own times: B (stamped after
    the loss) may then be an old line re-stamped, and one transfer of 100 USDT may be A's or B's. The ledger names
    no clientOid, so no verdict is made on a guess: both lines wait for an operator, nothing more is paid and the
    upstream is told nothing false (no ``funding.completed`` for either)."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "unkept")
        ev = events_for("unkept", funding=())
        a = topup("unkept", "topup-a", 5, [("USDT", "100")])
        rig.publish(a)
        rig.settle(ref)
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(10 * 60_000)
            b = {**topup("unkept", "topup-b", 0, [("USDT", "100")]), "occurred_at": rfc3339(int(rig.clock() * 1000))}
            assert isinstance(app.intake.accept(b), Accepted)
            redeliver(app, [a])
            settle_with(rig, app, ref)
            declare_republished(app)
            settle_with(rig, app, ref)
            record = app.store.load(ref)
            assert record is not None
            manual = sorted(step for step, blk in record.blocked.items() if blk.manual)
            assert manual == ["fund:unkept-topup-a#0", "fund:unkept-topup-b#0"], record.blocked
            assert not record.transfers
            assert [t["amount"] for t in paid_to(rig, uid)] == ["100"]
            assert outbound_of(app, "funding.completed") == []
        finally:
            app.close()
    finally:
        rig.close()
