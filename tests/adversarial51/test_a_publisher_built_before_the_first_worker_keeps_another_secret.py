"""``Runtime.publisher`` compares the naming fingerprint once, when the publisher is built, and only where one is
recorded (e6ddcf6: ``check_naming(record=False)``). A publisher of another ``PROVISIONER_NAME_SECRET`` built while
none is recorded — a brand-new deployment whose publisher starts before its first worker, a deployment from before
the field until an upgraded worker records it, or during a loss until ``provisioner recover`` — publishes with the
other naming for its whole life: a final ``event.refused`` it tells is recorded under a ref no worker reads, and a
later copy of that event is stored and paid.

Scenario: a new deployment. The upstream's publisher — a long-running Python process using ``worker.publish``
(docs/integration.md "Publishing from Python"), or ``provisioner publish -`` fed from a pipe — starts first, its
environment carrying another name secret (the premise of 3f3be1c). The workers start a moment later and record the
deployment's fingerprint. A customer is created. Its ``customer.kyc_approved`` (250 USDT) reaches the publisher
stamped an hour ahead of our clock (the upstream's clock ran fast): refused, "lies in the future", and the upstream
is told ``event.refused`` — final for the id. Later (the clock fixed, an outbox retry, an operator's re-send
through the API) the same event arrives again, now within the skew.

What happens: the publisher's ``Intake.report`` → ``record_refusal`` records the final refusal under
``{p}:c:<ref of the other secret>:refusals``. The later copy reaches a worker (or the API's admission), which looks
for a refusal under the deployment's ref: none — the approval is stored, a key issued and 250 USDT transferred.
The publisher was never refused: its one check ran before any fingerprint existed.

Why it is wrong: docs/integration.md makes ``event.refused`` final for its event id ("a later copy of it ... is
refused the same way, even if the cause went away"): the upstream booked the approval refused (and may send a new
one, paying again) while the money moved. 3f3be1c promises that a process with another secret "is refused before it
names anyone"; the publisher escapes it by having started early.

Suggested fix: compare the fingerprint where the naming is used, not once: in ``_RECORD_REFUSAL`` and the
publisher's hand-off (carry the fingerprint in ARGV and refuse ``NAMING`` as the admission script does, per
call), so a publisher refuses itself the moment the deployment's naming is recorded; or have the publisher record
it (``record=True``) when none exists, as a worker would.

Likelihood: low (a publisher of another secret that starts before the first worker, plus a refusal whose cause
later goes away), but the effect is money moved for an event the upstream was told was refused for good.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from tests.adversarial.helpers import outbound_of
from tests.core.harness import Clock, Rig, events_for, settings_for
from worker.intake import Refused
from worker.runtime.broker import build_runtime
from worker.store.epoch import NamingMismatch

pytestmark = pytest.mark.redis

PUBLISHER_SECRET = "early-publisher-name-secret-0123456789abcdefXYZ"
HOUR_MS = 3_600_000


def test_a_publisher_built_before_the_first_worker_keeps_another_secret(redis_url: str, key_prefix: str) -> None:
    rig = runtime = None
    try:
        # the publisher starts first on the new deployment: nothing recorded, so its check passes
        settings = settings_for(redis_url, key_prefix, PROVISIONER_NAME_SECRET=PUBLISHER_SECRET)
        clock = [Clock()]  # the rig's clock, once it exists (both start at the same moment)
        try:
            runtime = build_runtime(settings, registry=CollectorRegistry(), clock=lambda: clock[0]())
            publisher = runtime.publisher()
        except NamingMismatch:
            publisher = None  # a fix: refused (or recording its own, refusing the workers instead)
        rig = Rig(redis_url, key_prefix)  # the workers start: the deployment's fingerprint is recorded
        clock[0] = rig.clock
        assert rig.app.redis.hget(rig.app.keys.state, "naming") is not None

        ev = events_for("adv51-early-publisher")
        (ref,) = rig.publish(ev["created"])
        rig.settle(ref)
        kyc = {**ev["kyc"], "occurred_at": "2026-11-18T11:30:00Z"}  # an hour ahead of our clock
        if publisher is not None:
            try:
                first = publisher.publish(kyc)
            except NamingMismatch:  # a fix: checked per call
                first = None
            if isinstance(first, Refused):
                told = [e for e in outbound_of(rig, "event.refused") if e.get("event_id") == kyc["id"]]
                assert told, "the upstream is told the approval refused (final for its id)"

        rig.clock.advance_ms(2 * HOUR_MS)  # the same event arrives again, now within the skew
        told = [e for e in outbound_of(rig, "event.refused") if e.get("event_id") == kyc["id"]]
        again = rig.app.intake.accept(kyc)
        if not isinstance(again, Refused):
            rig.settle(ref)
        paid = rig.state()["transfers"]
        assert not (told and paid), (
            f"told event.refused ({told[0].get('reason')!r}, final) for {kyc['id']}, yet a later copy was "
            f"{type(again).__name__} and {len(paid)} transfer(s) paid it"
        )
    finally:
        if runtime is not None:
            runtime.close()
        if rig is not None:
            rig.close()
