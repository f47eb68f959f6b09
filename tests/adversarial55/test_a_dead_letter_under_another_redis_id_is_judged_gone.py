"""The HTTP API judges an admitted, unstored event "held" by the hand-off or by dramatiq's dead letter, looked up in
``<queue>.XQ.msgs`` under the redis message id the admission entry names (``admission.HELD_LUA``). But dramatiq
gives every enqueue a new redis message id (``RedisBroker.enqueue``: "Each enqueued message must have a unique id
in Redis ... messages may be retried"): a retry, a delayed message moved to its queue, the stale scan's re-send and
an operator's replay (``DeadLetters.replay`` → ``Handoff.send`` → ``broker.enqueue``) each enqueue the event under
another one. A message that dies after any of them is dead-lettered under an id the admission entry does not name,
and the event is judged held by nothing while its dead letter is there for an operator to replay."""

from __future__ import annotations

import json

import pytest

from tests.api.live import Upstream, event, live_api
from tests.core.harness import kyc_documents
from tests.runtime.rig import WorkerRig
from worker.sealing import generate_key_pair

pytestmark = pytest.mark.redis


def test_a_dead_letter_under_another_redis_id_is_judged_gone(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: the API seals KYC documents to an intake key no worker holds yet (a key rolled out in the wrong order,
    the case the admission's docstring names). The approval is accepted (202) and dead-lettered at once ("sealed KYC
    documents cannot be opened"). The operator replays it too early (the worker's key not rolled out yet, or a replay
    of every dead letter after an incident): it is dead-lettered again — the dead letter is there, listed by
    ``provisioner dlq list``, replayable.

    What happens: the replay enqueued the message under a new redis message id, so its new dead letter is
    ``<queue>.XQ.msgs[new id]``; the admission entry still names the first id. ``HELD_LUA`` finds neither the
    hand-off record (the nack took it out) nor ``XQ.msgs[first id]``: ``GET /v1/customers/{id}`` answers 404
    "no event of this customer is held: ... its dead letter is gone (re-send them)", and a re-send is answered
    ``accepted`` (202) and enqueued again — a second message and, with the cause still there, a second dead letter
    of one event.

    Why it is wrong: d783e50/59c83ba promise "``duplicate`` is the promise that something still holds the event: the
    hand-off, then its dead letter"; the view's 404 tells the upstream something false (its event is held, in a dead
    letter an operator will replay) and asks it to re-send. The same happens for a message retried before it died
    (every dramatiq retry is a new redis id: a Redis time-out storm, a bug in intake) and for one the stale scan
    re-sent. No money moves twice (intake stores an event id once), but the upstream is told a verdict that is not
    true and the operator's dead letters multiply.

    Suggested fix: judge by the message id, not the redis id: e.g. keep a small index ``{p}:dlq:held`` (message id →
    redis id) written by ``DeadLetterMiddleware.before_nack`` and removed on replay/purge/expiry, or have
    ``before_nack`` rewrite the admission entry's redis id (it knows the event id and the current redis id); or scan
    ``XQ`` for the message id in the view's read-only check.

    Likelihood: medium for the mismatch (any dead letter after a retry or a replay), low harm: an untrue 404 and an
    extra accepted message; no double effect found (the event id is stored once).
    """
    stranger = generate_key_pair("dev1")[1]
    with (
        WorkerRig(redis_url, key_prefix) as rig,
        live_api(redis_url, key_prefix, PROVISIONER_INTAKE_PUBLIC_KEY=stranger) as served,
    ):
        upstream = Upstream(served.url)
        customer = "adv55-held-replayed"
        approved = {**event("customer.kyc_approved", customer, permissions=["general"], ip_whitelist=["203.0.114.1"])}
        approved["data"]["kyc"] = kyc_documents("Ann")
        assert upstream.post(approved).status_code == 202
        [letter] = rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="the dead letter")
        assert upstream.customer(customer).json()["stage"] == "received", "precondition: held by its dead letter"

        letters = rig.runtime.dead_letters()
        assert letters.replay(letter.message_id)
        [again] = rig.wait_for(
            lambda: [d for d in rig.runtime.dead_letters().list() if d.redis_id != letter.redis_id],
            what="the replay's dead letter",
        )
        assert again.message_id == letter.message_id
        assert "sealed KYC documents cannot be opened" in json.dumps(again.summary())
        assert rig.runtime.handoff.waiting() == 0

        view = upstream.customer(customer)
        resent = upstream.post(approved)
        dead = [d.redis_id for d in rig.runtime.dead_letters().list()]
        assert (view.status_code, resent.status_code) == (200, 200), (
            f"the event's dead letter is held (redis id {again.redis_id}, listed: {dead}), yet the customer view "
            f"answers {view.status_code} {view.json().get('detail', '')!r} and a re-send is answered "
            f"{resent.status_code} {resent.json()}"
        )
        upstream.close()
