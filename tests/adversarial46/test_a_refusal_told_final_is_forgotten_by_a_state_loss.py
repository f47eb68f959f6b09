"""26525b9 makes ``event.refused`` final for its event id through ``{p}:c:<ref>:refusals`` — a key that lives only in
the state a loss takes away, and that ``provisioner recover --heard`` does not rebuild (it reads ``funding.*``,
``double:`` and ``api_key.*`` only). After a loss the upstream re-publishes "all" its events, as docs/integration.md
asks; an event it was told refused for a cause that has gone since is accepted and its top-up paid, next to the new
event the upstream sent in its place: the adv44a double payment, back through the recovery.

Scenario: customer C's top-up E (50 USDT) carries an ``occurred_at`` ten minutes ahead of the worker's clock (the
upstream's clock ran fast); intake refuses it ("occurred_at: lies in the future"), ``event.refused`` for E, final.
The upstream, as the contract says ("send a new event"), sends the top-up again as E2, which is paid. Later Redis
loses everything. On-call runs ``provisioner recover --heard received.jsonl --heard-complete`` with every event the
upstream received (it kept them all: E's ``event.refused`` too), the upstream re-publishes every event with its
original ``occurred_at`` (docs/integration.md, "Keep what you received"), and on-call declares the re-publication.

What happens: the refusals hash is gone and nothing restores it; E's ``occurred_at`` is now in the past, so intake
stores E. Its line ``E#0`` is a line from before the loss that the exchange shows unpaid and the heard file does not
mention; with ``--heard-complete`` it was "never decided" and is sent: 100 USDT moved for one top-up of 50, and the
upstream hears ``funding.completed`` for a line of an event it was told was refused for good.

Why it is wrong: docs/integration.md (e1c74f9): ``event.refused`` is "final for that id: a later copy of it (a
re-send, an operator's replay) is refused the same way, even if the cause went away"; the re-publication after a loss
is exactly such a later copy, and the recovery promises "no refused line is paid".

Suggested fix: take ``event.refused`` events in the ``--heard`` file (``worker.heard``: by ``customer_ref`` and
``event_id``, the ``field``/``reason`` as told) and write them to ``{p}:c:<ref>:refusals`` during ``recover``, so
the re-published copy is refused again under the same outbound id; and say in docs/integration.md to keep
``event.refused`` with the other outcomes (or not to re-publish events told refused).

Likelihood in production: low — a state loss, plus an event the worker refused for a cause that passed (clock skew,
a currency or photo limit rolled out in the wrong order — the causes 26525b9 was written for), plus a re-sent
replacement; the cost is a silent second payment, bounded by the caps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, total
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, second_host, settle_with
from worker.heard import outcomes_from_events, refusals_from_events
from worker.intake import Accepted, Refused
from worker.recovery import declare_republished, recover


def top_up(event_id: str, occurred: datetime) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "customer.funding_requested",
        "customer_id": "adv46-loss",
        "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {"funding": [{"currency": "USDT", "amount": "50"}]},
    }


def test_a_top_up_told_refused_is_paid_after_a_state_loss(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "adv46-loss")
        now = datetime.fromtimestamp(rig.clock(), tz=UTC)
        e1 = top_up("adv46-loss-e1", now + timedelta(minutes=10))  # the upstream's clock ran fast
        refused = rig.app.intake.accept(e1)
        assert isinstance(refused, Refused) and refused.field == "occurred_at", refused
        e2 = top_up("adv46-loss-e2", now)  # sent again as a new event, as the contract asks
        rig.publish(e2)
        rig.settle(ref)
        assert total(paid_to(rig, uid)) == 50
        received = outbound(rig)  # everything the upstream heard, event.refused for E1 included
        assert any(e["type"] == "event.refused" and e["event_id"] == e1["id"] for e in received)

        rig.clock.advance_ms(3_600_000)
        lose_everything(rig)
        app = second_host(rig, same_host=True)
        try:
            recover(
                app,
                reason="test: Redis lost everything",
                heard=outcomes_from_events(received),
                heard_complete=True,
                heard_refusals=refusals_from_events(received),
            )
            ev = events_for("adv46-loss", funding=())
            for event in (ev["created"], ev["kyc"], e1, e2):  # every event re-published, with its own occurred_at
                outcome = app.intake.accept(event)
                if event is not e1:
                    assert isinstance(outcome, Accepted), outcome
            settle_with(rig, app, ref)
            rig.clock.advance_ms(600_000)
            declare_republished(app, stamps_kept=True)
            for _ in range(3):
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)
                rig.clock.advance_ms(600_000)

            paid = total(paid_to(rig, uid))
            completed = [e["key"] for e in outbound(app) if e["type"] == "funding.completed"]
            assert paid == 50, f"{paid} USDT moved for one top-up of 50 (E1 was told refused, final): {completed}"
        finally:
            app.close()
    finally:
        rig.close()
