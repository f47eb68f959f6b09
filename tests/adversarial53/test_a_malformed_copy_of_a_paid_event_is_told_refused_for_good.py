"""A malformed copy of a stored (and paid) event is now told ``event.refused`` with the malformation's field — not
with ``field: id``, the one mark by which the upstream and ``recover --heard`` tell a conflict (not final) from a
refusal (final for the id). The upstream books an approval that took effect as refused, and after a loss the
``--heard`` file makes the re-published approval refused for good.

Scenario: ``customer.kyc_approved`` X is stored and its funding line paid. A copy of X with the same id arrives
malformed (a relay re-encoded ``"amount": "250"`` as the JSON number ``250``; a buggy re-send) — at-least-once
delivery makes copies routine, and 3815483 chose to *tell* such a copy instead of dropping it.

What happens: ``Intake.accept`` → ``check`` refuses it (the policy-free parse of a copy fails too) →
``Intake.refuse`` → ``report`` returns False (the event is stored) → ``check`` again → ``Refused`` replaced with
``conflict=True`` → ``report`` tells ``event.refused`` with ``field`` ``data.funding.0.amount`` and its reason.
Our side records it as not final (``final=False``), but nothing in the told event says so: the outbound payload has
no conflict mark, and every other conflict is told with ``field`` ``id`` (``IngestResult.CONFLICT``). docs/
integration.md: "``event.refused`` … final for that id"; ``worker.heard.refusals_from_events`` skips only
``field == "id"``. So the upstream books X refused although its funding was paid, and a ``recover --heard`` after a
loss records X's id as finally refused (``store_refusals``): the re-published X is refused, never stored again.

Why it is wrong: a refusal is told for an event that took effect (the brief's "reverse" case); the conflict is told
in a form that contradicts the contract both consumers of it rely on.

Suggested fix: tell a malformed copy of a stored event as a conflict in the conflict's form — ``field`` ``id``
(reason naming the malformation), as ``IngestResult.CONFLICT`` does — or tell nothing, as before 3815483.

Likelihood: medium-low (needs a malformed re-send of an id already stored), but every such copy is mis-told, and
the consequence after a loss (an approval refused for good) is silent.
"""

from __future__ import annotations

import pytest

from tests.core.harness import Rig, events_for
from worker.heard import refusals_from_events

pytestmark = pytest.mark.redis


def test_a_malformed_copy_of_a_paid_event_is_told_refused_for_good(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("adv53-malformed-copy")
        (ref, _) = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        assert len(rig.state()["transfers"]) == 1, "the approval took effect: its funding line was paid"

        copy = {**ev["kyc"], "data": {**ev["kyc"]["data"], "funding": [{"currency": "USDT", "amount": 250}]}}
        rig.app.intake.accept(copy)  # a malformed copy, re-delivered

        told = [e for e in rig.outbound() if e["type"] == "event.refused" and e["event_id"] == ev["kyc"]["id"]]
        fields = [e["field"] for e in told]
        assert all(f == "id" for f in fields), (
            f"the upstream was told event.refused (field {fields}) for {ev['kyc']['id']}, an approval that was "
            "stored and paid: final for the id by the contract"
        )
        heard = refusals_from_events(rig.outbound())
        assert ev["kyc"]["id"] not in heard.get(ref, {}), (
            "a recover --heard after a loss would record the paid approval as refused for good"
        )
    finally:
        rig.close()
