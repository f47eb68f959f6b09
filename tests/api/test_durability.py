"""A 2xx means the hand-off holds the event; a Redis outage is a 503 with nothing half-applied; concurrent identical
requests get one ``accepted`` and the rest ``duplicate``."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import dramatiq
import httpx
import pytest
import redis

from tests.api.live import LiveApi, Upstream, event, live_api
from tests.private_redis import PrivateRedis
from worker.runtime.actors import QUEUE_EVENTS, QUEUE_URGENT
from worker.runtime.admission import dramatiq_namespace
from worker.store.keys import Keys

pytestmark = pytest.mark.redis


def held(client: redis.Redis, prefix: str) -> dict[str, Counter[str]]:
    """Per event id: how many admission entries, hand-off records and queued messages Redis holds."""
    keys, ns = Keys(prefix), dramatiq_namespace(prefix)
    counts: dict[str, Counter[str]] = {"admitted": Counter(), "handoff": Counter(), "queued": Counter()}
    for key in client.scan_iter(f"{prefix}:c:*:admitted"):
        for event_id in client.hkeys(key):
            counts["admitted"][event_id] += 1
    for queue in (QUEUE_EVENTS, QUEUE_URGENT):
        for message_id in client.zrange(keys.handoff(queue), 0, -1):
            body = client.hget(keys.handoff_bodies, message_id)
            assert body is not None, "a hand-off record without its body"
            counts["handoff"][dramatiq.Message.decode(body.encode()).args[0]["id"]] += 1
        for rid in client.lrange(f"{ns}:{queue}", 0, -1):
            body = client.hget(f"{ns}:{queue}.msgs", rid)
            assert body is not None, "a queued id without its message"
            counts["queued"][dramatiq.Message.decode(body.encode()).args[0]["id"]] += 1
    return counts


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(durable=True)
    server.start()
    yield server
    server.stop()


def test_concurrent_identical_requests_accept_once(
    upstream: Upstream, api: LiveApi, redis_url: str, key_prefix: str
) -> None:
    same = event("customer.created", "race-1")
    other = {**same, "occurred_at": "2026-12-01T00:00:00Z"}
    barrier = threading.Barrier(24)
    statuses: list[int] = []

    def send(document: dict[str, Any]) -> None:
        client = Upstream(api.url)
        barrier.wait()
        statuses.append(client.post(document).status_code)
        client.close()

    threads = [threading.Thread(target=send, args=(same if i % 3 else other,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally = Counter(statuses)
    assert tally[202] == 1, tally
    assert tally[202] + tally[200] + tally[409] == 24
    winner_is_same = upstream.post(same).status_code == 200
    assert tally[409] == (8 if winner_is_same else 16), "every request with the losing content is a conflict"
    counts = held(redis.Redis.from_url(redis_url, decode_responses=True), key_prefix)
    assert counts["admitted"]["race-1-created"] == counts["handoff"]["race-1-created"] == 1
    assert counts["queued"]["race-1-created"] == 1


def test_redis_killed_mid_request_is_503_and_nothing_half_applied(private_redis: PrivateRedis, key_prefix: str) -> None:
    events = [event("customer.created", f"kill-{i}") for i in range(3000)]
    outcomes: dict[str, int] = {}
    unavailable: list[httpx.Response] = []
    stop = threading.Event()
    with live_api(private_redis.url, key_prefix) as served:
        upstream = Upstream(served.url)

        def publish() -> None:
            for start in range(0, len(events), 100):
                chunk = events[start : start + 100]
                try:
                    answer = upstream.post({"events": chunk})
                except httpx.HTTPError:
                    continue
                if answer.status_code == 503:
                    unavailable.append(answer)
                    continue
                assert answer.status_code == 200, answer.text
                for result in answer.json()["results"]:
                    outcomes[result["id"]] = 200 if result["status"] == "duplicate" else 202
                if stop.is_set():
                    return

        worker = threading.Thread(target=publish)
        worker.start()
        while len(outcomes) < 300 and worker.is_alive():
            time.sleep(0.001)
        private_redis.kill()  # while batches are in flight
        worker.join(60)
        stop.set()
        assert unavailable, "requests during the outage were answered 503"
        assert all(a.headers["retry-after"] == "5" for a in unavailable)
        assert all(a.headers["content-type"] == "application/problem+json" for a in unavailable)
        private_redis.start()
        client = redis.Redis.from_url(private_redis.url, decode_responses=True)
        before = held(client, key_prefix)
        for name in ("admitted", "handoff", "queued"):
            assert set(before[name]) >= set(outcomes), f"every 2xx event is {name}"
            assert max(before[name].values()) == 1, f"no event {name} twice"
        assert set(before["admitted"]) == set(before["handoff"]) == set(before["queued"]), "all or nothing per event"
        # the upstream retries everything it was not told 2xx for: each is then accepted or a duplicate
        retried = [e for e in events if e["id"] not in outcomes]
        for start in range(0, len(retried), 500):
            answer = upstream.post({"events": retried[start : start + 500]})
            assert answer.status_code == 200
            for result in answer.json()["results"]:
                expected = "duplicate" if result["id"] in before["admitted"] else "accepted"
                assert result["status"] == expected, result
        after = held(client, key_prefix)
        assert set(after["queued"]) == {e["id"] for e in events}
        assert all(n == 1 for name in after for n in after[name].values())
        upstream.close()
        client.close()


def test_a_2xx_event_reaches_a_worker_that_stores_it(redis_url: str, key_prefix: str) -> None:
    """What admission wrote is a real dramatiq message: a worker consumes it, stores the event and forgets both the
    hand-off record and the admission entry; a re-send is then judged against the stored event."""
    from tests.runtime.rig import WorkerRig

    with WorkerRig(redis_url, key_prefix) as rig, live_api(redis_url, key_prefix) as served:
        upstream = Upstream(served.url)
        created = event("customer.created", "e2e-1")
        offboarded = event("customer.offboarded", "e2e-2", minutes_ago=0.5)
        assert upstream.post({"events": [created, offboarded]}).status_code == 200
        ref = rig.runtime.app.policy.naming.customer_ref("e2e-1")
        rig.wait_for(lambda: (r := rig.runtime.app.store.load(ref)) and r.sub_account, what="the sub-account")
        rig.wait_for(lambda: rig.runtime.handoff.waiting() == 0, what="the hand-off emptied")
        counts = held(rig.runtime.app.redis, key_prefix)
        assert not counts["admitted"], "stored events are no longer in the admission index"
        assert upstream.post(created).status_code == 200
        assert upstream.post({**created, "occurred_at": "2026-12-01T00:00:00Z"}).status_code == 409
        view = upstream.customer("e2e-1").json()
        assert view["stage"] == "awaiting_approval" and view["sub_account_uid"]
        assert json.dumps(view).count("e2e-1") == 1, "the view names the customer once, by its own id"
        upstream.close()


def test_documents_sealed_to_a_key_no_worker_holds_are_dead_lettered_not_lost(redis_url: str, key_prefix: str) -> None:
    """A misconfigured API (its public key is no worker's) loses nothing: the approval waits in the dead letters,
    named, until the key is fixed and it is replayed."""
    from tests.core.harness import kyc_documents
    from tests.runtime.rig import WorkerRig
    from worker.sealing import generate_key_pair

    stranger = generate_key_pair("dev1")[1]
    with (
        WorkerRig(redis_url, key_prefix) as rig,
        live_api(redis_url, key_prefix, PROVISIONER_INTAKE_PUBLIC_KEY=stranger) as served,
    ):
        upstream = Upstream(served.url)
        approved = {**event("customer.kyc_approved", "dl-1", permissions=["general"], ip_whitelist=["203.0.114.1"])}
        approved["data"]["kyc"] = kyc_documents("Ann")
        assert upstream.post(approved).status_code == 202
        letters = rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="the dead letter")
        assert "sealed KYC documents cannot be opened" in json.dumps([d.summary() for d in letters])
        assert rig.runtime.handoff.waiting() == 0, "the dead letter holds it now"
        assert upstream.post(approved).status_code == 200, "still held: a re-send is a duplicate"
        upstream.close()


def test_an_admitted_event_is_held_while_its_message_lives_and_taken_again_once_it_is_gone(
    upstream: Upstream, api: LiveApi, redis_url: str, key_prefix: str
) -> None:
    """``duplicate`` is the promise that something still holds the event: the hand-off, then its dead letter. Once
    neither does (a purge, an expiry) without a worker having stored it, the same content is ``accepted`` again;
    other content stays a conflict; what was written before is judged as then (an entry of a bare fingerprint is
    held; dead-letter metadata that names no redis id holds the event while it lives)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys, queue = Keys(key_prefix), f"{dramatiq_namespace(key_prefix)}:{QUEUE_EVENTS}"
    created = event("customer.created", "held-1")
    assert upstream.post(created).status_code == 202
    [admitted_key] = list(client.scan_iter(f"{key_prefix}:c:*:admitted"))
    _, message_id, _ = client.hget(admitted_key, created["id"]).split(" ")
    [redis_id] = client.lrange(queue, 0, -1)
    assert upstream.post(created).status_code == 200, "queued and in the hand-off: held"

    # a worker dead-letters it before storing it: out of the hand-off, into dramatiq's dead letters (as its nack),
    # our metadata naming the redis id it died with
    client.zrem(keys.handoff(QUEUE_EVENTS), message_id)
    body = client.hget(f"{queue}.msgs", redis_id)
    client.lrem(queue, 0, redis_id)
    client.hdel(f"{queue}.msgs", redis_id)
    client.zadd(f"{queue}.XQ", {redis_id: int(time.time() * 1000)})
    client.hset(f"{queue}.XQ.msgs", redis_id, body)
    client.hset(keys.dead_letter(message_id), mapping={"kind": "unauthenticated", "redis_message_id": redis_id})
    assert upstream.post(created).status_code == 200, "in a dead letter an operator may replay: held"
    assert upstream.post({**created, "occurred_at": "2026-12-01T00:00:00Z"}).status_code == 409

    client.zrem(f"{queue}.XQ", redis_id)
    client.hdel(f"{queue}.XQ.msgs", redis_id)  # dropped by dramatiq (7 days), our metadata still there (8)
    assert upstream.post(created).json()["status"] == "accepted", "nothing holds it any more: taken again"
    _, again, _ = client.hget(admitted_key, created["id"]).split(" ")
    assert again != message_id and client.zscore(keys.handoff(QUEUE_EVENTS), again) is not None

    # metadata written before it named the redis id: held while it lives
    client.zrem(keys.handoff(QUEUE_EVENTS), again)
    client.hset(keys.dead_letter(again), mapping={"kind": "unauthenticated"})
    assert upstream.post(created).status_code == 200, "the metadata of its dead letter lives: held"
    client.delete(keys.dead_letter(again))

    assert upstream.post({**created, "occurred_at": "2026-12-01T00:00:00Z"}).status_code == 409, "other content"
    assert upstream.post(created).json()["status"] == "accepted", "nothing holds it any more: taken again"
    assert upstream.post(created).status_code == 200

    legacy = event("customer.created", "held-2")
    assert upstream.post(legacy).status_code == 202
    [legacy_key] = [k for k in client.scan_iter(f"{key_prefix}:c:*:admitted") if k != admitted_key]
    fingerprint, legacy_id, _ = client.hget(legacy_key, legacy["id"]).split(" ")
    client.hset(legacy_key, legacy["id"], fingerprint)  # written by the version before message ids
    client.zrem(keys.handoff(QUEUE_EVENTS), legacy_id)
    assert upstream.post(legacy).status_code == 200, "an entry without its message id is taken as held"
    client.close()


def test_a_dead_letter_dramatiq_expired_no_longer_holds_its_event(redis_url: str, key_prefix: str) -> None:
    """dramatiq's maintenance drops a dead letter 7 days after it died; our metadata about it lives a day longer
    (for the dead-letter listing). A re-send in that day must be taken again: answering ``duplicate`` would promise
    an event nothing holds any more, and the upstream, told we have it, would never send it again. The customer's
    view no longer shows it ``received`` either (404: nothing of it is known, re-send)."""
    from dramatiq.common import xq_name

    from tests.core.harness import kyc_documents
    from tests.runtime.rig import WorkerRig
    from worker.sealing import generate_key_pair

    stranger = generate_key_pair("dev1")[1]
    with (
        WorkerRig(redis_url, key_prefix) as rig,
        live_api(redis_url, key_prefix, PROVISIONER_INTAKE_PUBLIC_KEY=stranger) as served,
    ):
        upstream = Upstream(served.url)
        approved = {**event("customer.kyc_approved", "dl-7", permissions=["general"], ip_whitelist=["203.0.114.1"])}
        approved["data"]["kyc"] = kyc_documents("Ann")
        assert upstream.post(approved).status_code == 202
        [letter] = rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="the dead letter")
        assert upstream.post(approved).status_code == 200, "in the dead letters: held"
        assert upstream.customer("dl-7").json()["stage"] == "received"

        # day 7: dramatiq's maintenance drops the dead letter as its dispatch.lua does; our metadata stays
        client = rig.runtime.app.redis
        dead = f"{rig.runtime.broker.namespace}:{xq_name(letter.queue)}"
        assert client.zrem(dead, letter.redis_id) == 1 and client.hdel(f"{dead}.msgs", letter.redis_id) == 1
        assert client.exists(Keys(key_prefix).dead_letter(letter.message_id)), "our metadata outlives it"
        assert upstream.customer("dl-7").status_code == 404, "nothing holds it: not 'received' for ever"

        assert upstream.post(approved).json()["status"] == "accepted", "nothing holds it any more: taken again"
        rig.wait_for(lambda: len(rig.runtime.dead_letters().list()) == 1, what="the new message's dead letter")
        upstream.close()


def test_a_copy_of_an_erased_customers_event_is_a_duplicate_at_the_api(redis_url: str, key_prefix: str) -> None:
    """After ``customer forget`` pseudonymised a closed customer's stored events, a copy of one of them sent again
    (the upstream's re-send after a lost 2xx) is the same event: ``duplicate``, not a conflict of its id."""
    from tests.runtime.rig import WorkerRig
    from worker.erasure import forget

    with WorkerRig(redis_url, key_prefix) as rig, live_api(redis_url, key_prefix) as served:
        upstream = Upstream(served.url)
        created = event("customer.created", "erased-1")
        offboarded = event("customer.offboarded", "erased-1", minutes_ago=0.5)
        assert upstream.post({"events": [created, offboarded]}).status_code == 200
        store = rig.runtime.app.store
        ref = rig.runtime.app.policy.naming.customer_ref(created["customer_id"])
        rig.wait_for(lambda: (r := store.load(ref)) and r.closed_at_ms, what="the customer closed")
        forget(store, ref, now_ms=int(time.time() * 1000), lock_ttl_ms=10_000)
        answer = upstream.post(offboarded)
        assert answer.status_code == 200 and answer.json()["status"] == "duplicate", answer.text
        changed = {**offboarded, "occurred_at": "2026-12-01T00:00:00Z"}
        assert upstream.post(changed).status_code == 409, "other content is still a conflict"
        upstream.close()
