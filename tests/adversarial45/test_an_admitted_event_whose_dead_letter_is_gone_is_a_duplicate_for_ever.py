"""An event the API admitted (202) whose message dies before any worker stores it stays in the admission index
(``{p}:c:<ref>:admitted``) for good: only the worker's ingest script forgets an entry. While the dead letter
exists, a re-send answered ``duplicate`` is true (the dead letter holds the event until a replay). Once the dead
letter is gone — ``provisioner dlq purge``, or dramatiq's own 7-day expiry of dead letters — nothing holds the event
any more, yet every re-send is still answered ``200 duplicate`` and enqueues nothing: the event can never reach a
worker under its id."""

from __future__ import annotations

import base64
import json

import pytest

from tests.api.live import Upstream, approval, event, live_api
from tests.runtime.rig import WorkerRig

pytestmark = [pytest.mark.redis, pytest.mark.loopback]

API_KEYS = "new=" + base64.b64encode(b"n" * 7 + bytes(range(25))).decode()
"""The event-signing key the API was given first (a rotation done in the wrong order): no worker holds it yet."""


def test_an_event_re_published_after_its_dead_letter_was_purged_is_never_stored(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: the event-signing key is rotated in the wrong order — the API gets the new key before the workers
    do. A customer's ``customer.created`` and ``customer.kyc_approved`` are POSTed and answered 202; the workers
    refuse both messages (no proof from a key they hold) and dead-letter them as ``unauthenticated``. On-call
    fixes the rollout (the API signs with the workers' key again), purges the dead letters and — as README's trust
    boundary section suggests for messages dead-lettered as ``unauthenticated`` — asks the upstream to publish
    those events again ("safe: intake takes an event id once"). (dramatiq also drops any dead letter after 7 days:
    the same state without a purge.)

    What happens: the re-published events are answered ``200 {"status": "duplicate"}``: the admission index still
    holds their fingerprints, so the admission script enqueues nothing. No worker ever stores them; the customer
    view says ``received`` for ever; the customer never gets a sub-account, key or money, and nothing alerts once
    the dead letters are gone.

    Why it is wrong: a 2xx promises the event is held (docs/integration.md: 200 = "already accepted with the same
    content"); here nothing holds it, and the upstream's only remedy — re-sending — is silently swallowed. The
    exactly-once ingest turns into at-most-once.

    Suggested fix: forget the admission entry whenever the message that carries it leaves for good without being
    stored — ``DeadLetters.purge`` (it knows the event ids), and the dead letters' expiry (keep the message id in
    the admitted entry and let the admission script treat an entry whose message is neither in the hand-off nor in
    a dead-letter set as absent); at least answer ``accepted`` again for an admitted id whose message is gone.

    Likelihood: low-to-medium — needs an event dead-lettered before it was stored (an event-signing or intake key
    rolled out in the wrong order, documents sealed to a key no worker holds, an event the worker's clock finds too
    old — or more than 5 minutes in the future when the API host's clock runs ahead of the worker's: intake checks
    again with its own clock and dead-letters it as invalid without running the ingest script that forgets the
    admission entry) and then a purge or a week without a replay; impact: the customer's onboarding (or a
    top-up, an offboarding) silently never happens under that event id, and the upstream was told it is held.
    """
    with WorkerRig(redis_url, key_prefix) as rig:
        customer = "adm-gone"
        created = event("customer.created", customer)
        approved = approval(customer)
        with live_api(redis_url, key_prefix, PROVISIONER_EVENT_SIGNING_KEYS=API_KEYS) as wrong:
            upstream = Upstream(wrong.url)
            answers = [upstream.post(created).status_code, upstream.post(approved).status_code]
            upstream.close()
        assert answers == [202, 202], answers
        letters = rig.wait_for(
            lambda: (d := rig.runtime.dead_letters().list()) and len(d) == 2 and d, what="two dead letters"
        )
        assert {d.kind for d in letters} == {"unauthenticated"}, [d.summary() for d in letters]
        assert rig.runtime.dead_letters().purge(letters) == 2  # on-call: purge, and have the upstream re-publish

        with live_api(redis_url, key_prefix) as fixed:  # the API signs with the workers' key again
            upstream = Upstream(fixed.url)
            again = [upstream.post(created).json(), upstream.post(approved).json()]
            upstream.close()
        ref = rig.runtime.app.policy.naming.customer_ref(customer)
        try:
            rig.wait_for(lambda: (r := rig.runtime.app.store.load(ref)) and r.sub_account, timeout=8, what="stored")
        except AssertionError:
            stored = rig.runtime.app.redis.hkeys(rig.runtime.app.keys.events(ref))
            admitted = rig.runtime.app.redis.hkeys(rig.runtime.app.keys.admitted(ref))
            raise AssertionError(
                f"re-published after the purge: {json.dumps(again)}; stored events {stored}, still admitted "
                f"{admitted}: the events can never reach a worker under their ids"
            ) from None
