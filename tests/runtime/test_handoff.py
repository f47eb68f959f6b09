"""The hand-off: an event lost inside the queue (dramatiq drops a retry whose enqueue fails while Redis is away,
and a delayed message a reconnecting consumer held) is sent again until a worker has stored it."""

from __future__ import annotations

import contextlib

from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig
from tests.signed import signed_message


def _lose_queued_messages(rig: WorkerRig, queue: str = "events") -> int:
    """What a Redis outage can do to dramatiq: the messages vanish from the queue."""
    client = rig.runtime.broker.client
    ns = rig.runtime.broker.namespace
    lost = int(client.llen(f"{ns}:{queue}"))
    client.delete(f"{ns}:{queue}", f"{ns}:{queue}.msgs")
    return lost


def test_events_lost_inside_the_queue_are_sent_again_and_provisioned(redis_url: str, key_prefix: str) -> None:
    with_rig = WorkerRig(redis_url, key_prefix)
    ev = events_for("h-lost")
    with_rig.publisher.publish(ev["created"])
    with_rig.publisher.publish(ev["kyc"])
    assert with_rig.runtime.handoff.waiting() == 2
    assert _lose_queued_messages(with_rig) == 2
    keys = with_rig.runtime.app.keys
    client = with_rig.runtime.app.redis
    for message_id in client.zrange(keys.handoff("events"), 0, -1):
        client.zadd(keys.handoff("events"), {message_id: 0})  # sent long ago: the first stale scan re-sends both
    with with_rig as rig:
        rig.wait_for(lambda: rig.live_keys(), what="the key, after the lost events were sent again")
        rig.wait_for(lambda: rig.runtime.handoff.waiting() == 0, what="both events stored and forgotten")
        state = rig.exchange.state_snapshot()
        assert len(state["subAccounts"]) == 1
        assert [t["amount"] for t in state["transfers"]] == ["250"]


def test_nothing_is_sent_again_while_the_event_queues_hold_messages(redis_url: str, key_prefix: str) -> None:
    """A message waiting in a backlog is not lost: re-sending it would only double the backlog."""
    rig = WorkerRig(redis_url, key_prefix)
    try:
        ev = events_for("h-backlog")
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["kyc"])
        client, ns = rig.runtime.broker.client, rig.runtime.broker.namespace
        client.lpop(f"{ns}:events")  # one lost, one still queued
        assert rig.runtime.handoff.resend_stale(0) == 0
        client.delete(f"{ns}:events")  # now both lost and the queue empty
        assert rig.runtime.handoff.resend_stale(0) == 2
        assert client.llen(f"{ns}:events") == 2
        assert rig.runtime.handoff.resend_stale(60_000) == 0, "at most once per stale period"
    finally:
        rig.runtime.close()


def test_stored_and_dead_lettered_events_are_forgotten_and_a_replay_is_handed_off(
    redis_url: str, key_prefix: str
) -> None:
    with WorkerRig(redis_url, key_prefix) as rig:
        ev = events_for("h-done")
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["created"])  # a duplicate delivery is stored once, and forgotten too
        rig.wait_for(lambda: rig.runtime.handoff.waiting() == 0, what="stored events forgotten")

        junk = signed_message(
            rig.runtime.actors.handle_event, {"id": "junk", "type": "customer.created"}, rig.runtime.app.proofs
        )
        rig.runtime.handoff.send(junk)
        dlq = rig.runtime.dead_letters()
        rig.wait_for(lambda: dlq.list(), what="the invalid event dead-lettered")
        assert rig.runtime.handoff.waiting() == 0, "a dead letter is the operator's to replay, not the stale scan's"

        assert dlq.replay(junk.message_id)
        rig.wait_for(lambda: dlq.list(), what="dead-lettered again")
        assert rig.runtime.handoff.waiting() == 0
        assert rig.runtime.handoff.resend_stale(0) == 0


def test_a_lost_offboarding_does_not_wait_for_a_sign_up_backlog(redis_url: str, key_prefix: str) -> None:
    """Review finding: the re-send waited for every event queue to be empty; ``urgent`` exists so that
    offboarding never waits behind sign-ups."""
    rig = WorkerRig(redis_url, key_prefix)
    try:
        rig.publisher.publish(events_for("h-urgent")["offboard"])
        client, ns = rig.runtime.broker.client, rig.runtime.broker.namespace
        client.delete(f"{ns}:urgent")  # the offboarding is lost inside the queue
        client.rpush(f"{ns}:events", "a-sign-up-waiting-in-a-campaign-backlog")
        assert rig.runtime.handoff.resend_stale(0) == 1
        assert client.llen(f"{ns}:urgent") == 1
    finally:
        rig.runtime.close()


def test_an_event_never_stored_is_re_sent_a_bounded_number_of_times_and_stays_counted(
    redis_url: str, key_prefix: str
) -> None:
    """A message that kills its worker is never stored, never dead-lettered: re-sending must not multiply it."""
    from worker.runtime.handoff import MAX_RESENDS

    rig = WorkerRig(redis_url, key_prefix)
    try:
        rig.publisher.publish(events_for("h-poison")["created"])
        client, ns = rig.runtime.broker.client, rig.runtime.broker.namespace
        sent = 0
        for _ in range(MAX_RESENDS + 3):
            client.delete(f"{ns}:events", f"{ns}:events.msgs")  # lost (or killed its worker) every time
            sent += rig.runtime.handoff.resend_stale(0)
        assert sent == MAX_RESENDS
        assert rig.runtime.handoff.waiting() == 1, "still counted as unstored (the EventsNotStored alert)"
    finally:
        rig.runtime.close()


def test_storing_an_event_forgets_its_re_send_count(redis_url: str, key_prefix: str) -> None:
    with WorkerRig(redis_url, key_prefix) as rig:
        client, ns = rig.runtime.broker.client, rig.runtime.broker.namespace
        rig.worker.pause()
        rig.publisher.publish(events_for("h-count")["created"])
        client.delete(f"{ns}:events", f"{ns}:events.msgs")
        assert rig.runtime.handoff.resend_stale(0) == 1
        assert client.hlen(rig.runtime.app.keys.handoff_resends) == 1
        rig.worker.resume()
        rig.wait_for(lambda: rig.runtime.handoff.waiting() == 0, what="stored")
        assert client.hlen(rig.runtime.app.keys.handoff_resends) == 0


def test_a_re_send_is_counted_only_once_it_was_sent(redis_url: str, key_prefix: str) -> None:
    """Review finding: the count was taken when claiming; re-sends whose enqueue failed used up the budget."""
    import redis as redis_lib

    from worker.runtime.handoff import MAX_RESENDS

    rig = WorkerRig(redis_url, key_prefix)
    try:
        rig.publisher.publish(events_for("h-failing-sends")["created"])
        client, ns = rig.runtime.broker.client, rig.runtime.broker.namespace
        client.delete(f"{ns}:events", f"{ns}:events.msgs")
        broker, real = rig.runtime.broker, rig.runtime.broker.enqueue

        def down(*args: object, **kwargs: object) -> None:
            raise redis_lib.ConnectionError("Redis went away")

        broker.enqueue = down  # type: ignore[method-assign]
        for _ in range(MAX_RESENDS + 1):
            with contextlib.suppress(redis_lib.ConnectionError):
                rig.runtime.handoff.resend_stale(0)
        broker.enqueue = real  # type: ignore[method-assign]
        assert rig.runtime.handoff.resend_stale(0) == 1
    finally:
        rig.runtime.close()
