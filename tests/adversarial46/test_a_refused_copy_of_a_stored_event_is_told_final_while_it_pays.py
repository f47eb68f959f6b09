"""A copy of an event the worker already stored (and paid) is checked against the contract again before intake looks
at what it holds; when that check now refuses it — the event crossed the 365-day age bound, a worker's clock lags,
a rollout removed its currency or lowered ``PROVISIONER_MAX_KYC_PHOTO_BYTES`` — the upstream is told
``event.refused``, which 26525b9 made *final* for the id, for an event whose lines are paid.

Scenario: customer C's top-up E (300 USDT, occurred 364 days and 23h59m30s ago: a backfill, or an upstream that
batches) is stored by a worker and paid; ``funding.completed`` for ``E#0`` is on the outbound stream. A second copy
of E is then taken a minute later — at-least-once delivery: the worker died after storing E and before the ack and
dramatiq requeued it, or on-call ran ``provisioner dlq replay --all`` after an exchange outage dead-lettered E's
reconcile (the README's incident walkthrough), or the publisher re-ran ``provisioner publish`` on its file
("publishing the same event again is safe").

What happens: ``Intake.accept`` runs ``check`` first: "occurred_at: is older than 365 days". ``report`` records the
refusal as final ({p}:c:<ref>:refusals) and appends ``event.refused`` for E to the outbound stream; the stored
event is untouched (ingest never ran). The upstream now holds both ``funding.completed`` for ``E#0`` and
``event.refused`` for E, the latter documented (docs/integration.md, since e1c74f9) as "final for that id … send a
new event".

Why it is wrong: the refusal is not true — E was accepted, stored and paid — yet it is told as the final word on E.
An upstream that follows the contract books the top-up as refused (refunds its customer, or sends the top-up again
under a new id, which is paid: 600 USDT for one top-up of 300, within the cap and silent). ``Intake.accept``'s own
docstring says a duplicate is "fine": a copy of a stored event must be a duplicate whatever today's policy says.

Suggested fix: in ``Intake.accept`` (and ``Publisher.publish``), when ``check`` refuses an event whose id and
customer can be read, ask the store first (``HGET`` of the customer's events hash): an id already stored is a
duplicate (same content) or a conflict (other content) — decided by ingest, never refused by the policy checks of
the moment (age, clock, currencies, photo size). Or run those policy checks inside/after the ingest script's
``existing`` test only for new events.

Likelihood in production: low to medium — each trigger is rare alone (a copy of a stored event AND a policy check
that changed its verdict), but copies are routine (at-least-once, bulk replays, re-published files) and rollouts of
currencies/photo limits are routine; the cost is an upstream told "refused, final" for money that moved.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, total
from tests.core.harness import Rig, events_for
from tests.runtime.rig import WorkerRig
from worker.bootstrap import intake_sealer
from worker.runtime.admission import Admission, AdmissionStatus, dramatiq_namespace


def test_a_copy_of_a_stored_paid_topup_is_told_refused_for_good(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "adv46-copy")
        occurred = datetime.fromtimestamp(rig.clock(), tz=UTC) - timedelta(days=365) + timedelta(seconds=30)
        event = {
            "id": "adv46-copy-topup",
            "type": "customer.funding_requested",
            "customer_id": "adv46-copy",
            "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": {"funding": [{"currency": "USDT", "amount": "300"}]},
        }
        rig.publish(event)  # the first copy: stored
        rig.settle(ref)
        assert total(paid_to(rig, uid)) == 300
        completed = [e for e in outbound(rig) if e["type"] == "funding.completed"]
        assert [e["key"] for e in completed] == ["adv46-copy-topup#0"]

        rig.clock.advance_ms(60_000)  # a minute later, a second copy (redelivery, replay, re-published file)
        rig.app.intake.accept(event)

        refused = [e for e in outbound(rig) if e["type"] == "event.refused" and e["event_id"] == event["id"]]
        assert not refused, (
            f"the upstream was told event.refused (final for the id) for a top-up it was told completed: {refused}"
        )
    finally:
        rig.close()


def test_the_apis_retry_of_an_event_it_accepted_answers_duplicate_after_the_age_bound(
    redis_url: str, key_prefix: str
) -> None:
    """The same at the edge: an upstream whose answer was lost retries the same request after the event crossed
    the age bound (or a rollout removed its currency): the API answers ``duplicate`` — it holds the event — not
    a 422 the contract calls final, for an event that takes (or took) effect. Other content stays a conflict."""
    with WorkerRig(redis_url, key_prefix) as rig:
        app = rig.runtime.app
        # the worker judges with the real clock, the admission with ``now``: the event is 200 days old for the worker
        occurred = float(int(time.time()) - 200 * 86_400)
        stamp = datetime.fromtimestamp(occurred, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        now = [occurred + 364 * 86_400]

        admission = Admission(
            app.redis,
            app.keys,
            app.policy.naming,
            intake_sealer(rig.settings),
            proofs=app.proofs,
            currencies=frozenset(rig.settings.currencies),
            namespace=dramatiq_namespace(rig.settings.key_prefix),
            clock=lambda: now[0],
        )
        ev = events_for("adv46-api", funding=())
        created = {**ev["created"], "occurred_at": stamp}
        [first] = admission.admit([json.dumps(created)])
        assert first.status is AdmissionStatus.ACCEPTED, first
        now[0] = occurred + 366 * 86_400  # the retry, past the age bound
        [again] = admission.admit([json.dumps(created)])
        assert again.status is AdmissionStatus.DUPLICATE, again
        rig.wait_for(lambda: app.store.holds_event(app.policy.naming.customer_ref("adv46-api"), created["id"]))
        [stored] = admission.admit([json.dumps(created)])
        assert stored.status is AdmissionStatus.DUPLICATE, stored
        later = datetime.fromtimestamp(occurred + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        [other] = admission.admit([json.dumps({**created, "occurred_at": later})])
        assert other.status is AdmissionStatus.CONFLICT, other
        [fresh] = admission.admit([json.dumps({**created, "id": "adv46-api-new"})])
        assert fresh.status is AdmissionStatus.REFUSED and fresh.field == "occurred_at", fresh
