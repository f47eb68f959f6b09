"""984017d keeps "a key of ours held futures" in the customer record (``futures_granted``, set when a key is issued,
updated or listed with futures, never cleared), so that ``customer.offboarded`` tells ``unread_wallets:
["CONTRACT"]`` even after the key was narrowed. The flag lives only in Redis: after a loss of our state the record
is rebuilt from the exchange (the audit lists the key as it is *now*, narrowed) and from the re-published events,
and nothing sets the flag again — although the re-published events themselves say futures were granted (an older
``customer.kyc_approved`` asked for them)."""

from __future__ import annotations

import pytest

from tests.adversarial.helpers import approval, outbound_of
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis


def test_a_futures_grant_narrowed_before_a_loss_is_forgotten_by_the_close(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: a customer approved with ``general, spot, futures``: key #0 may trade futures, and the customer moves
    money into the futures wallet. A newer approval withdraws futures; the worker narrows key #0
    (``futures_granted`` stays true in the record: adv39's fix). Then Redis loses its data; ``provisioner
    recover`` runs, the upstream re-publishes the customer's events (both approvals), the on-call declares it. The
    upstream offboards the customer.

    What happens: the recovered record is rebuilt from the exchange, where key #0 holds ``general, spot`` only; no
    step sets ``futures_granted`` from the re-published approval that granted futures. The close sends
    ``customer.offboarded`` with ``unread_wallets: []``.

    Why it is wrong: docs/integration.md: ``unread_wallets`` is ``["CONTRACT"]`` "when a key we issued held the
    futures permission" — this one did; the upstream is told every wallet was read, and the customer's futures
    money is never looked for. The promise "customer.offboarded honest" must hold across a loss of Redis, which the
    product promises to survive.

    Suggested fix: derive it from what survives a loss too: in the close (or the audit after a recovery), set
    ``futures_granted`` when any stored ``customer.kyc_approved`` of the customer asked for futures (the fold can
    expose "futures ever wanted"), in addition to the record's flag.

    Likelihood: low (a loss of Redis after a futures grant was narrowed, then an offboarding); impact: money left
    in a wallet nobody is told to check.
    """
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("fx-loss", funding=(("USDT", "250"),))
        ev["kyc"]["data"]["permissions"] = ["general", "spot", "futures"]
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        narrowed = approval("fx-loss", "kyc-no-futures", 2, [])  # newer: general, spot
        rig.publish(narrowed)
        rig.settle(ref)
        (key,) = rig.record(ref).live_keys
        assert "futures" not in key.permissions and rig.record(ref).futures_granted, "precondition: narrowed"

        lose_everything(rig)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref2 = redeliver(app, [ev["created"], ev["kyc"], narrowed])
            assert ref2 == ref
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            settle_with(rig, app, ref)
            rig.clock.advance_ms(600_000)
            assert app.intake.accept(ev["offboard"]) is not None
            for _ in range(3):
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)
                rig.clock.advance_ms(600_000)
            record = app.store.load(ref)
            assert record is not None and record.closed_at_ms is not None, "precondition: closed"
            (closed,) = outbound_of(app, "customer.offboarded")
            assert closed["unread_wallets"] == ["CONTRACT"], (
                f"key #0 held futures until it was narrowed before the loss; after the recovery the close says "
                f"unread_wallets={closed['unread_wallets']}: the futures wallet is taken as read"
            )
        finally:
            app.close()
    finally:
        rig.close()
