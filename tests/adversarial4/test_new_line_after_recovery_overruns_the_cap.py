"""c2177ef: a line asked for after the recovery (``not _maybe_lost``) "is just sent" — but it is also decided
against the per-customer cap at once, and after a total loss (no ``--heard``) the record's ``funded()`` knows only
the lines re-published so far. A live top-up that arrives before the upstream's re-publication reaches an earlier,
paid line is paid on a cap that counts nothing; the earlier line is then found paid, and the customer holds more
than the cap."""

from __future__ import annotations

import shutil
from decimal import Decimal

from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, topup, total, violations_after
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import recover
from worker.store.outbound import rfc3339


def test_a_live_top_up_during_the_republication_overruns_the_per_customer_cap(redis_url: str, key_prefix: str) -> None:
    """Scenario: per-customer cap 1000 USDT. Top-up A (600 USDT) is paid. Redis loses everything; ``provisioner
    recover`` without ``--heard`` (the documented safe default). The upstream starts re-publishing (the customer's
    creation and approval arrive; the record is audited). Ten minutes later, before the re-publication reaches A,
    the customer asks for top-up B (600 USDT) — a live event, occurring now. Then A is re-published.

    What happens: B occurred after the recovery, so it is not looked for and not held: ``_funding`` decides it
    against the cap with ``funded() == 0`` and pays 600. A is looked for, found in the ledger and recorded
    committed. 1200 USDT to a customer capped at 1000; ``verify``: "none above the caps".

    Why it is wrong: the caps hold after a loss. Without heard outcomes a line from before the recovery waits
    for an operator (a97a4cd); one asked for after it (c2177ef) is sent on a cap that cannot know what the lost
    state had paid — though the Special Account's ledger can (the transfers to this sub-account since it was
    created, the way the daily caps are seeded). Without heard outcomes a new line must be decided against what
    the exchange shows paid to the sub-account (or wait), not only against the lines re-published so far."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "live-cap")
        ev = events_for("live-cap", funding=())
        a = topup("live-cap", "topup-a", 5, [("USDT", "600")])
        rig.publish(a)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["600"]
        heard = outbound(rig.app)

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")  # no --heard
            ref = redeliver(app, [ev["created"], ev["kyc"]])  # the re-publication has begun
            settle_with(rig, app, ref)

            rig.clock.advance_ms(10 * 60_000)
            b = {**topup("live-cap", "topup-b", 0, [("USDT", "600")]), "occurred_at": rfc3339(int(rig.clock() * 1000))}
            assert isinstance(app.intake.accept(b), Accepted)
            settle_with(rig, app, ref)
            redeliver(app, [a])  # the re-publication reaches A
            rig.clock.advance_ms(3_600_000)
            app.due.schedule(ref, int(rig.clock() * 1000))
            settle_with(rig, app, ref)

            published = [ev["created"], ev["kyc"], a, b]
            violations = violations_after(rig, app, published, heard)
            paid = total(paid_to(rig, uid))
            caps = [f"{v.invariant}: {v.detail}" for v in violations if v.invariant == "none above the caps"]
            assert paid <= Decimal(1000) and not caps, f"paid {paid} USDT to a customer capped at 1000: {caps}"
        finally:
            app.close()
    finally:
        rig.close()
