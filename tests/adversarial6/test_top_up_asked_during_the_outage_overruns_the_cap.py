"""8b75a05 makes a line "stamped after the loss" wait for the re-publication's declaration — but "the loss" is the
moment ``provisioner recover`` ran (``recovered_at_ms``), not the moment Redis lost our state. A top-up the
customer asks for while the workers are halted (between the loss and the on-call's ``recover``), or within
``UPSTREAM_SKEW_MS`` after it, is stamped before (or too close to) that moment: it is decided like a re-published
line — looked for by its own amount, found unpaid, and sent against a per-customer cap that knows nothing of a
line paid before the loss and not re-published yet."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest

from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, topup, total, violations_after
from tests.core.harness import Crash, Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.intake import Accepted
from worker.recovery import declare_republished, recover
from worker.store.outbound import rfc3339

OUTAGE_MS = 30 * 60_000
"""How long the workers stay halted before the on-call runs ``provisioner recover``."""


@pytest.mark.parametrize(
    ("asked_after_loss_ms", "amount", "ledger_context"),
    [
        (10 * 60_000, "500", "order_id"),
        (OUTAGE_MS + 2 * 60_000, "500", "order_id"),
        (10 * 60_000, "600", "client_oid"),
    ],
    ids=["during-the-outage", "two-minutes-after-recover", "during-the-outage-same-amount-clientoid-ledger"],
)
def test_a_top_up_asked_while_the_workers_were_halted_overruns_the_per_customer_cap(
    redis_url: str, key_prefix: str, asked_after_loss_ms: int, amount: str, ledger_context: str
) -> None:
    """Scenario: per-customer cap 1000 USDT. Top-up A (600 USDT) is sent; the exchange executes it and the worker
    dies before recording the answer — and Redis restarts without persistence (A's intent is lost with it). The
    workers halt (``StateLost``). Ten minutes later the customer asks for top-up B (500 USDT): the halted intake
    refuses the delivery and the upstream retries it. Half an hour after the loss the on-call runs ``provisioner
    recover --heard received.jsonl --heard-complete`` (nothing was waiting for delivery: A's outcome was never
    written — the runbook's recommended path). The upstream's retry of B is delivered at once and the
    re-publication begins (creation, approval); it reaches A an hour later, and the on-call declares it complete
    with ``--stamps-kept`` (true: the upstream re-sent every event unchanged). Variants: B asked two minutes after
    the ``recover`` (within ``UPSTREAM_SKEW_MS``); B = 600 USDT on a ledger naming the clientOid.

    What happens: B's ``occurred_at`` is before ``recovered_at_ms`` (or within the skew after it), so
    ``_surely_after_loss`` is false and B does not wait for the declaration: it is looked for only for transfers
    of its own amount that it could be tied to — none — so NOT_COMMITTED, and (outcomes heard) it is decided
    against the cap with ``funded() == 0``: paid. A is then re-published, found in the ledger and recorded: 1100
    (or 1200) USDT paid to a customer capped at 1000; ``verify``: "none above the caps".

    Why it is wrong: the README promises that until the declaration a line stamped after the loss "waits — nothing
    sent", because "a line paid before the loss but not re-published yet is unknown to the caps". The loss happened
    before ``recover``: a top-up of the outage (the very one the halted workers refused and the upstream re-sends
    first) is such a line, and the caps must hold after a loss whatever the on-call's reaction time."""
    rig = Rig(redis_url, key_prefix)
    rig.exchange.update_config({"ledger_context": ledger_context})
    try:
        ref, uid = onboard_with_a_key(rig, "outage")
        ev = events_for("outage", funding=())
        a = topup("outage", "topup-a", 5, [("USDT", "600")])
        rig.publish(a)
        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="after")  # the exchange moved it; we died
        with pytest.raises(Crash):
            rig.run(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["600"]
        heard = outbound(rig.app)  # every outcome written before the loss was delivered: none of A

        lost_at_ms = int(rig.clock() * 1000)
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        asked_at = lost_at_ms + asked_after_loss_ms
        b = {**topup("outage", "topup-b", 0, [("USDT", amount)]), "occurred_at": rfc3339(asked_at)}
        rig.clock.advance_ms(OUTAGE_MS)
        app = second_host(rig, same_host=True)
        try:
            recover(
                app,
                reason="test: Redis restarted without persistence",
                heard=outcomes_from_events(heard),
                heard_complete=True,
            )
            rig.clock.advance_ms(max(0, asked_at - int(rig.clock() * 1000)))
            assert isinstance(app.intake.accept(b), Accepted)  # the upstream's retry of the refused delivery
            ref = redeliver(app, [ev["created"], ev["kyc"]])  # the re-publication has begun
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)
            redeliver(app, [a])  # the re-publication reaches A
            settle_with(rig, app, ref)
            declare_republished(app, stamps_kept=True)
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
