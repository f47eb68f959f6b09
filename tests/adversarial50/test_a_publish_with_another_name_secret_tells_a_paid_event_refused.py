"""``provisioner publish`` never compares its naming with the deployment's (3f3be1c checks workers and the API
only): run with another ``PROVISIONER_NAME_SECRET``, it judges a copy of a stored, paid event as unknown and tells
the upstream ``event.refused`` — final for that event id — for an approval whose 250 USDT moved.

Scenario: the upstream feeds events through ``provisioner publish`` (a cron job, a sidecar, an operator's shell:
docs/integration.md "Publishing from the CLI"), whose environment carries another ``PROVISIONER_NAME_SECRET`` (the
premise of 3f3be1c: a manifest or secret store with another value; the publish host is configured apart from the
workers). A customer's ``customer.kyc_approved`` was stored and paid long ago. The upstream sends it again (a replay
of its log, a retry of a lost answer): a copy that today's moment-dependent checks refuse — here the age bound (older
than 365 days); a clock of the publish host, or a currency it does not list, does the same.

What happens: ``Publisher.publish`` → ``Intake.check``: the parse with today's policy fails, and the "copy of a stored
event" rescue (adv46, b0b2e9c) asks ``holds_event`` under the ref *this* naming derives — another ref, nothing
stored there — so the copy is refused; ``Intake.report`` → ``record_refusal`` (02abf05's script checks whether the
event is stored, again under the wrong ref) records a final refusal and tells ``event.refused``. Nothing on the way
calls ``StateGuard.establish`` or ``check_naming``: the refusal script and the outbound report are not gated by the
fingerprint.

Why it is wrong: docs/integration.md makes ``event.refused`` final for its event id ("send a new event"): the
upstream books the approval refused — and may send a new one, which pays again — while the exchange shows the
money moved. It is the very outcome 02abf05 and b0b2e9c fixed, reached through the one process that names
customers without being checked; 3f3be1c's promise is that a process with another secret "is refused before it
names anyone".

Suggested fix: check the naming fingerprint (``check_naming(record=False)``) in every process that derives refs:
``Runtime.publisher`` (or ``provisioner publish`` before its first line), and the operator commands that name
customers (``provisioner customer``, ``verify``, ``recover``); or carry the fingerprint into ``_RECORD_REFUSAL`` and
the outbound script (as the admission script does) so that no refusal is told by a process of another naming.

Likelihood: low (a publish host of another secret, plus a copy refused by a moment-dependent check), but the effect
is a false final refusal for money that moved, and the check already exists.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for, settings_for
from worker.intake import Refused
from worker.runtime.broker import build_runtime
from worker.store.epoch import NamingMismatch

pytestmark = pytest.mark.redis

OTHER_SECRET = "publish-host-name-secret-0123456789abcdefXYZ"
DAY_MS = 86_400_000


def test_a_publish_with_another_name_secret_tells_a_paid_event_refused(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    runtime = None
    try:
        ev = events_for("adv50-publish")
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        assert len(rig.state()["transfers"]) == 1
        assert [e["type"] for e in outbound_of(rig, "funding.completed")] == ["funding.completed"]
        rig.clock.advance_ms(400 * DAY_MS)  # the copy comes after the age bound (365 days)
        assert not isinstance(rig.app.intake.check(ev["kyc"]), Refused), "the deployment knows it as a stored copy"

        settings = settings_for(redis_url, key_prefix, PROVISIONER_NAME_SECRET=OTHER_SECRET)
        try:
            runtime = build_runtime(settings, transport=rig.transport, registry=CollectorRegistry(), clock=rig.clock)
            result = runtime.publisher().publish(ev["kyc"])  # `provisioner publish` of the copy
        except NamingMismatch as refused:  # the fix: a publish host of another naming is refused
            assert "PROVISIONER_NAME_SECRET" in str(refused) and OTHER_SECRET not in str(refused)
            result = None
        told = [e for e in outbound_of(rig, "event.refused") if e.get("event_id") == ev["kyc"]["id"]]
        assert not told, (
            f"the upstream is told the paid approval refused (final): {told[0].get('reason')!r}; publish said {result}"
        )
    finally:
        if runtime is not None:
            runtime.close()
        rig.close()
