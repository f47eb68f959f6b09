"""``provisioner customer forget`` (and the retention sweep) rewrites every stored event of a closed customer with
``customer_id`` = ``erased:<ref>`` (``worker.erasure``). Since e18aee6 the ingest script asks "stored?" before
"closed?", and compares the stored JSON byte for byte: a copy of one of those events, delivered again (at least
once) after the erasure, no longer matches what is stored, and is judged a *conflict* — told ``event.refused``
("event id already used for an event with different content") and dead-lettered — where before it was ignored."""

from __future__ import annotations

import pytest

from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for
from worker.erasure import forget
from worker.intake import Refused

pytestmark = pytest.mark.redis


def test_a_copy_of_an_erased_customers_event_is_told_refused(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: a customer is onboarded, funded and offboarded; the customer is closed. Its personal data is erased
    (``provisioner customer forget`` on an erasure request, or the retention sweep): the stored events now carry
    ``customer_id: erased:<ref>``. The upstream's at-least-once delivery then brings a copy of the customer's
    ``customer.offboarded`` (the very case e18aee6 was about: the offboarding's own message delivered again after the
    close) — or any other of its events (a re-send after a lost 2xx, a replayed dead letter).

    What happens: the ingest script finds the event id stored, compares the stored JSON (pseudonymised) with the
    copy's (the real customer id): different → ``conflict``. ``Intake.accept`` reports ``event.refused`` with field
    ``id`` and reason "event id already used for an event with different content", carrying the real customer id
    again in its payload; the actor raises ``InvalidEvent`` and the message is dead-lettered (``invalid_event``),
    keeping the customer's id and event for 7 days after the erasure purged its dead letters. Before e18aee6 the
    same copy was ``closed`` → ``event.ignored``, no dead letter.

    Why it is wrong: the copy is the event that took effect, unchanged: "every verdict told upstream truthfully" —
    the upstream is told its id was reused for other content (integration: a conflict means "send a new id"), for an
    offboarding it saw completed. The operator gets a dead letter for nothing, holding personal data the erasure
    had just purged (README: "`forget` also purges the dead letters that carry the customer's events").

    Suggested fix: in the ingest script (and the admission's), compare a copy with an erased customer's stored event
    after pseudonymising the copy the same way (or: a stored event whose customer_id is ``erased:<ref>`` for this
    ref answers a copy as ``duplicate`` when the rest matches); or check "closed?" before "stored?" again for an
    erased customer only.

    Likelihood: low — an erasure followed by a copy of one of the customer's events (an erasure request right after
    the close, with the upstream still re-sending; or a replay). No money moves; the verdict told is false.
    """
    rig = Rig(redis_url, key_prefix)
    try:
        customer = "adv55-erased-copy"
        ev = events_for(customer, funding=(("USDT", "100"),))
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        rig.publish(ev["offboard"])
        rig.settle(ref)
        assert rig.record(ref).closed_at_ms is not None, "precondition: closed"

        done = forget(rig.app.store, ref, now_ms=int(rig.clock() * 1000), lock_ttl_ms=10_000)
        assert done.events >= 3, "precondition: the stored events were pseudonymised"
        refused_before = len(outbound_of(rig, "event.refused"))

        outcome = rig.app.intake.accept(ev["offboard"])  # a copy of the offboarding, delivered again
        told = outbound_of(rig, "event.refused")[refused_before:]
        assert not (isinstance(outcome, Refused) and not outcome.ignored) and not told, (
            f"a copy of the erased customer's offboarding (which took effect) was judged {outcome!r} and told "
            f"{[(e['field'], e['reason']) for e in told]}"
        )
    finally:
        rig.close()
