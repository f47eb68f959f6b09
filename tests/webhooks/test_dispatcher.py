"""The dispatcher against a real loopback receiver that verifies with the ``standardwebhooks`` library: signed
deliveries of what the worker really emits, retries with backoff and Retry-After, the dead letter after the retry
horizon (on an injectable clock), redelivery after a crash at either side of the request, order per customer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from handlers.delivery import http_date
from tests.core.harness import Rig, events_for
from tests.webhooks.conftest import FakeClock, Hooks
from tests.webhooks.keys import DEV_PRIVATE_JWK, open_jwe
from tests.webhooks.receiver import Reply
from worker.webhooks.store import DeliveryStore


class Crash(BaseException):
    """The dispatcher's process dying at this line (nothing of ours catches a BaseException)."""


class CrashingTransport(httpx.BaseTransport):
    """The real network to the receiver, but "the process dies" before sending or after the answer, once."""

    def __init__(self, when: str) -> None:
        self.when = when
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.when == "before":
            self.when = ""
            raise Crash("before the request")
        response = self.inner.handle_request(request)
        if self.when == "after":
            self.when = ""
            response.read()
            raise Crash("after the answer")
        return response


def store(hooks: Hooks) -> DeliveryStore:
    return DeliveryStore(hooks.redis, hooks.keys)


def run_until_quiet(hooks: Hooks, clock: FakeClock, dispatcher: Any, *, max_steps: int = 500) -> None:
    """Deliver what is due, jumping the clock to each next due time, until nothing waits."""
    for _ in range(max_steps):
        dispatcher.drain()
        due = store(hooks).next_due_ms()
        if due is None:
            return
        clock.to_ms(due)
    raise AssertionError("deliveries did not finish")


@pytest.fixture
def rig(hooks: Hooks) -> Iterator[Rig]:
    rig = Rig(str(hooks.settings.redis_url), hooks.settings.key_prefix)
    yield rig
    rig.close()


def test_what_the_worker_emits_arrives_signed_verified_and_decryptable(hooks: Hooks, rig: Rig) -> None:
    """A real lifecycle's events, each POSTed once: the receiver's standardwebhooks verifies the signature,
    webhook-id is the event's id, the body is the stream's JSON byte for byte, the JWE opens."""
    ev = events_for("hooked")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.settle(ref)
    rig.app.intake.accept("{")  # a refusal about no customer
    stream = [(fields["id"], fields["event"]) for _, fields in rig.app.redis.xrange(rig.app.keys.outbound)]
    hooks.dispatcher().drain()
    got = hooks.receiver.delivered()
    assert sorted((r.webhook_id, r.body) for r in got) == sorted(stream)
    customer = [r.webhook_id for r in got if r.event["customer_ref"] == ref]
    assert customer == [i for i, body in stream if f'"customer_ref":"{ref}"' in body], "in stream order"
    assert all(r.verified for r in got), "the standardwebhooks library accepts every signature"
    (issued,) = [r.event for r in got if r.event["type"] == "api_key.issued"]
    _, plain = open_jwe(issued["credentials"]["jwe"], DEV_PRIVATE_JWK)
    assert plain["api_key"] == issued["api_key"] and rig.key_works(
        plain["api_key"], plain["secret"], plain["passphrase"]
    )
    assert store(hooks).status().undelivered == 0


def test_a_forged_or_stale_signature_is_refused_by_the_receiver(hooks: Hooks) -> None:
    """The receiver's check is real: a timestamp an hour old, or a signature under another secret, is refused."""
    from datetime import UTC, datetime

    from standardwebhooks import Webhook, WebhookVerificationError

    from worker.webhooks.signing import Signer

    hooks.emit("c-forged")
    hooks.dispatcher(clock=lambda: time.time() - 3600).drain()  # an hour-old signature
    (stale,) = hooks.receiver.delivered()
    assert not stale.verified
    forged = Signer.parse("whsec_" + "b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWxvbmctISE=").headers(
        stale.webhook_id, stale.body, datetime.now(tz=UTC)
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(hooks.settings.secret("webhook_secret")).verify(stale.body, forged)


def test_failures_are_retried_with_backoff_and_retry_after(hooks: Hooks) -> None:
    answers = iter([Reply(503), Reply(429, {"Retry-After": "120"}), Reply(500), Reply(200)])
    hooks.receiver.plan = lambda event: next(answers)
    (event_id,) = hooks.emit("c-retry")
    clock = FakeClock()
    start = int(clock() * 1000)
    dispatcher = hooks.dispatcher(clock=clock, draw=lambda: 0.0)
    s = store(hooks)

    dispatcher.drain()  # 503: backoff 5 s drawn in its upper half, at the bottom with draw 0
    assert s.next_due_ms() == start + 2_500
    clock.to_ms(start + 2_499)
    assert dispatcher.drain() == 0, "nothing before it is due"
    clock.to_ms(start + 2_500)
    dispatcher.drain()  # 429 + Retry-After: 120 s, longer than the backoff
    assert s.next_due_ms() == start + 2_500 + 120_000
    clock.to_ms(start + 122_500)
    dispatcher.drain()  # 500: third attempt, 20 s ceiling, 10 s with draw 0
    assert s.next_due_ms() == start + 122_500 + 10_000
    clock.to_ms(start + 132_500)
    dispatcher.drain()
    assert [r.answered for r in hooks.receiver.all()] == [503, 429, 500, 200]
    assert {r.webhook_id for r in hooks.receiver.all()} == {event_id}
    assert s.next_due_ms() is None and s.status().undelivered == 0


def test_retry_after_as_an_http_date(hooks: Hooks) -> None:
    clock = FakeClock()
    start = int(clock() * 1000)
    answers = iter([Reply(503, {"Retry-After": http_date(start + 600_000)}), Reply(204)])
    hooks.receiver.plan = lambda event: next(answers)
    hooks.emit("c-date")
    dispatcher = hooks.dispatcher(clock=clock)
    dispatcher.drain()
    assert abs(store(hooks).next_due_ms() - (start + 600_000)) <= 1000  # an HTTP-date has whole seconds


@pytest.mark.webhook_settings(PROVISIONER_WEBHOOK_RETRY_HORIZON_SECONDS=str(3 * 86_400))
def test_a_delivery_failing_for_three_days_becomes_a_dead_letter_and_the_customer_moves_on(hooks: Hooks) -> None:
    """The receiver refuses one event for good: it is retried for the whole horizon (the clock jumps), then
    dead-lettered; the customer's next event waited behind it and is delivered after; a retry delivers it."""
    poisoned: set[str] = set()
    hooks.receiver.plan = lambda event: Reply(400) if event["id"] in poisoned else Reply(204)
    first, second = hooks.emit("c-dead", n=2)
    poisoned.add(first)
    clock = FakeClock()
    start = int(clock() * 1000)
    dispatcher = hooks.dispatcher(clock=clock, draw=lambda: 0.5)
    run_until_quiet(hooks, clock, dispatcher)

    s = store(hooks)
    (letter,) = s.dead_letters()
    assert letter.event_id == first and letter.lane == "c-dead" and letter.last_status == 400
    assert letter.dead_ms - start >= 3 * 86_400_000, "retried for at least the horizon"
    assert letter.attempts > 80 and "not delivered after" in letter.reason
    bodies = [r.webhook_id for r in hooks.receiver.all()]
    assert bodies.index(second) == len(bodies) - 1, "the next event waited for the first to be given up"
    assert all(r.webhook_id == first for r in hooks.receiver.all()[:-1])

    poisoned.clear()
    assert s.retry_dead(letter.entry_id, int(clock() * 1000))
    assert not s.retry_dead(letter.entry_id, int(clock() * 1000)), "retrying twice is safe"
    dispatcher.drain()
    assert hooks.receiver.delivered()[-1].webhook_id == first
    assert s.dead_letters() == [] and s.status().undelivered == 0


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_dispatcher_dying_mid_delivery_is_redelivered_after_its_lease(hooks: Hooks, when: str) -> None:
    """The process dies after the claim (before the request, or after the receiver answered 2xx but before it
    was recorded): nothing is lost; once the lease ends another dispatcher sends it, with the same webhook-id."""
    (event_id,) = hooks.emit("c-crash")
    clock = FakeClock()
    dying = hooks.dispatcher(clock=clock, transport=CrashingTransport(when))
    with pytest.raises(Crash):
        dying.run_once()
    survivor = hooks.dispatcher(clock=clock)
    assert survivor.drain() == 0, "leased: not sent again while the first attempt may still be running"
    clock.advance_ms(survivor.lease_ms)
    assert survivor.drain() == 1
    ids = [r.webhook_id for r in hooks.receiver.delivered()]
    assert ids == ([event_id] if when == "before" else [event_id, event_id]), "a copy, dropped by its webhook-id"
    assert store(hooks).status().undelivered == 0


def test_a_late_report_from_a_lost_lease_changes_nothing(hooks: Hooks) -> None:
    """A dispatcher frozen past its lease: another one took the head over; the first one's report is ignored."""
    hooks.emit("c-frozen", n=2)
    clock = FakeClock()
    s = store(hooks)
    s.admit(int(clock() * 1000))
    (frozen,) = s.claim(int(clock() * 1000), limit=1, lease_ms=1000, token="frozen")
    clock.advance_ms(1000)
    (taken,) = s.claim(int(clock() * 1000), limit=1, lease_ms=1000, token="taker")
    assert taken.entry_id == frozen.entry_id
    assert not s.delivered(frozen, int(clock() * 1000)), "stale"
    assert s.delivered(taken, int(clock() * 1000))
    assert s.status().undelivered == 1, "exactly one popped"


def test_one_customers_events_arrive_in_sequence_order_while_others_flow(hooks: Hooks) -> None:
    """Concurrent delivery (the thread, 16 connections): customer A's second event fails twice; A's later events
    wait behind it while B's arrive; each customer's events arrive in sequence order."""
    failures = {"n": 0}
    target: list[str] = []

    def plan(event: dict[str, Any]) -> Reply:
        if event["id"] in target and failures["n"] < 2:
            failures["n"] += 1
            return Reply(503)
        return Reply(204, delay_s=0.01)

    hooks.receiver.plan = plan
    a_ids = hooks.emit("c-a", n=5)
    target.append(a_ids[1])
    b_ids = hooks.emit("c-b", n=5)
    settings = hooks.settings.model_copy(update={"webhook_min_backoff_ms": 20, "webhook_max_backoff_ms": 40})
    hooks.settings = settings
    dispatcher = hooks.dispatcher()
    dispatcher.start()
    try:
        deadline = time.monotonic() + 15
        while len(hooks.receiver.delivered()) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        dispatcher.stop()
    delivered = [r.event for r in hooks.receiver.delivered()]
    for ref, ids in (("c-a", a_ids), ("c-b", b_ids)):
        mine = [e for e in delivered if e["customer_ref"] == ref]
        assert [e["id"] for e in mine] == ids
        assert [e["sequence"] for e in mine] == sorted(e["sequence"] for e in mine)
    a_third = next(i for i, e in enumerate(delivered) if e["id"] == a_ids[2])
    a_second = next(i for i, e in enumerate(delivered) if e["id"] == a_ids[1])
    assert a_second < a_third
    assert failures["n"] == 2
