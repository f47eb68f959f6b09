"""Races around the due schedule: an event that lands between a run's last look and its finish is never lost,
whatever the hosts' clocks say; the stale scan is not fooled by a far-away wake-up."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
import redis

from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for, kyc_documents
from worker.exchange import RetryableError
from worker.provisioning.reconciler import FAILURE_BACKSTOP_MS, StepsBlocked
from worker.store.lock import CustomerLock

DAY_MS = 86_400_000


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix)
    yield rig
    rig.close()


def _held(rig: Rig, ref: str) -> CustomerLock:
    lock = CustomerLock(rig.app.redis, rig.app.keys, ref, ttl_ms=10_000)
    assert lock.acquire()
    return lock


class _Unreachable(httpx.BaseTransport):
    """KuCoin cannot be reached (for ``failures`` requests ending in ``path``, or every one)."""

    def __init__(self, inner: httpx.BaseTransport, *, path: str = "", failures: int | None = None) -> None:
        self.inner, self.path, self.failures = inner, path, failures

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(self.path) and self.failures != 0:
            if self.failures is not None:
                self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return self.inner.handle_request(request)


def _poor(redis_url: str, key_prefix: str) -> Rig:
    """A broker whose Special Account cannot pay the 250 USDT funding line: funding is refused (blocked)."""
    return Rig(redis_url, key_prefix, config=SandboxConfig(initial_balances={"MAIN": {"USDT": "10"}}))


def test_an_event_stored_after_the_runs_last_look_keeps_the_run_going(rig: Rig) -> None:
    """Review finding: a run that saw N events must not clear the inbox or push the wake-up 90 days out when an
    N+1th event (an offboarding) arrived after its last look. It looks again, still holding the customer."""
    ev = events_for("late-event")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.settle(ref)
    due, app = rig.app.due, rig.app
    seen = app.store.snapshot(ref).seq
    wake_before = due.next_due_ms(ref)
    lock = _held(rig, ref)
    rig.publish(ev["offboard"])  # lands after the look, before the finish
    now = int(rig.clock() * 1000)
    assert due.finish_and_release(lock, now + 90 * DAY_MS, seen_seq=seen) is False
    assert lock.token is not None and app.redis.get(app.keys.lock(ref)) is not None, "still ours: look again"
    assert due.next_due_ms(ref) == wake_before, "wake-up untouched"
    assert app.redis.zscore(app.keys.inbox, ref) is not None, "still in the inbox"
    lock.release()
    rig.settle(ref)
    record = rig.record(ref)
    assert record.closed_at_ms is not None and not record.live_keys
    assert app.redis.zscore(app.keys.inbox, ref) is None


def test_a_run_found_busy_meanwhile_makes_the_holder_look_again(rig: Rig) -> None:
    ev = events_for("dirty")
    (ref,) = rig.publish(ev["created"])
    lock = _held(rig, ref)
    report = rig.app.reconciler.run(ref)
    assert report.outcome == "busy"
    assert rig.app.due.finish_and_release(lock, None, seen_seq=rig.app.store.snapshot(ref).seq) is False
    assert rig.app.due.finish_and_release(lock, None, seen_seq=rig.app.store.snapshot(ref).seq) is True
    assert lock.token is None and rig.app.redis.get(rig.app.keys.lock(ref)) is None, "released"


def test_finish_with_everything_seen_replaces_the_wake_up_clears_the_inbox_and_releases(rig: Rig) -> None:
    ev = events_for("all-seen")
    (ref,) = rig.publish(ev["created"])
    due, app = rig.app.due, rig.app
    now = int(rig.clock() * 1000)
    due.schedule(ref, now + 1000)  # e.g. a busy reconcile's backstop, for an event this run saw
    lock = _held(rig, ref)
    assert due.finish_and_release(lock, now + 5 * DAY_MS, seen_seq=app.store.snapshot(ref).seq)
    assert due.next_due_ms(ref) == now + 5 * DAY_MS
    assert app.redis.zscore(app.keys.inbox, ref) is None
    assert app.redis.get(app.keys.lock(ref)) is None


def test_events_arriving_during_a_run_are_handled_by_that_run(rig: Rig) -> None:
    """An IP change stored while the run is at the exchange, and another run finding the customer busy: the
    running reconcile reads them before it lets go, so one run converges (no second message needed)."""
    ev = events_for("mid-run")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]

    def meanwhile() -> None:
        rig.publish(ev["ip"])
        assert rig.app.reconciler.run(ref).outcome == "busy"

    rig.transport.after.append(("POST", "/api/v1/broker/nd/transfer", meanwhile))
    report = rig.run(ref)
    assert report is not None and report.outcome == "idle", report
    assert not rig.transport.after, "the hook ran"
    (key,) = rig.record(ref).live_keys
    assert key.ip_whitelist == ("198.51.101.7", "198.51.101.8")
    assert rig.app.redis.zscore(rig.app.keys.inbox, ref) is None
    assert rig.app.redis.get(rig.app.keys.dirty(ref)) is None


def test_the_stale_scan_is_not_fooled_by_a_far_away_wake_up(rig: Rig) -> None:
    """A converged customer (wake-up in 90 days) gets an event, and the run for it dies: the stale scan must still
    re-schedule it although a wake-up exists."""
    ev = events_for("far-wake")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.settle(ref)
    app = rig.app
    assert app.due.next_due_ms(ref) > int(rig.clock() * 1000) + DAY_MS
    rig.publish(ev["ip"])  # stored; its reconcile never runs (the message was lost)
    later = int(rig.clock() * 1000) + 10 * 60_000
    assert app.due.sweep(later, stale_ms=120_000) == 1
    assert app.due.next_due_ms(ref) == later
    rig.clock.advance_ms(10 * 60_000)
    rig.settle(ref)
    assert rig.record(ref).live_keys[0].ip_whitelist == ("198.51.101.7", "198.51.101.8")


def test_the_stale_scan_leaves_a_customer_waiting_for_its_rate_limit_slot_alone(rig: Rig) -> None:
    ev = events_for("slot")
    (ref,) = rig.publish(ev["created"])
    now = int(rig.clock() * 1000)
    rig.app.due.schedule(ref, now + 20 * 60_000)  # a reservation twenty minutes out
    assert rig.app.due.sweep(now + 5 * 60_000, stale_ms=120_000) == 0


def test_a_sweep_refused_because_money_moved_after_the_read_is_read_again(rig: Rig) -> None:
    """Review finding: an order filled between the balance read and the sweep; the refused sweep must not be
    retried with the stale amount forever. The replay reads the balances again and sweeps what is there."""
    ev = events_for("moving")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.settle(ref)
    uid = rig.record(ref).sub_account.uid
    rig.transport.after.append(
        ("GET", "/api/v1/sub-accounts/", lambda: rig.exchange.credit(uid, "USDT", "TRADE", "-1"))
    )
    rig.publish(ev["offboard"])
    rig.settle(ref)
    record = rig.record(ref)
    assert "sweep" in record.blocked and record.balances is None and record.closed_at_ms is None
    assert rig.blocked, "dead-lettered for a human"
    rig.run(ref, retry_blocked=True)
    rig.settle(ref)
    record = rig.record(ref)
    assert record.closed_at_ms is not None
    (sub,) = [s for s in rig.state()["subAccounts"] if s["uid"] == uid]
    assert all(Decimal(v) == 0 for rows in sub["balances"].values() for v in rows.values())


def test_a_block_whose_run_died_is_still_reported_once(redis_url: str, key_prefix: str) -> None:
    """Review finding: a funding line is refused (blocked), then the process dies before the run could raise the
    dead letter. The next run raises it; later runs do not raise it again."""
    from tests.core.harness import Crash

    rig = _poor(redis_url, key_prefix)
    try:
        ev = events_for("died-blocked")
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.transport.crash("POST", "/api/v1/broker/nd/account/apikey", when="before")
        crashes: list[Crash] = []
        rig.settle(ref, on_crash=crashes.append)
        assert len(crashes) == 1
        assert len(rig.blocked) == 1 and "fund:" in str(rig.blocked[0])
        rig.publish(ev["ip"])
        rig.settle(ref)
        assert len(rig.blocked) == 1, "reported once, not at every later run"
        assert rig.record(ref).live_keys, "the rest of the customer still converged"
    finally:
        rig.close()


def test_a_lost_kyc_resubmission_is_sent_again_not_taken_for_the_old_rejection(redis_url: str, key_prefix: str) -> None:
    """Review finding: after a REJECT, new documents come; the resubmission dies before reaching KuCoin. The old
    REJECT is no proof it arrived: the documents are sent again and the new review decides."""
    docs = kyc_documents

    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig(kyc_review_ms=1000),
        PROVISIONER_PROXY_KYC="true",
        PROVISIONER_KYC_POLL_SECONDS="5",
    )
    try:
        ev = events_for("resub")
        first = {**ev["kyc"], "data": {**ev["kyc"]["data"], "kyc": docs("REJECT"), "funding": []}}
        (ref,) = rig.publish(ev["created"], first)[:1]
        rig.settle(ref)
        assert rig.record(ref).kyc.stage.value == "REJECT"
        second = {
            **first,
            "id": "resub-kyc2",
            "occurred_at": "2026-11-18T10:01:30Z",
            "data": {**first["data"], "kyc": docs("Alice")},
        }
        rig.publish(second)
        rig.transport.crash(
            "POST",
            "/api/kyc/ndBroker/proxyClient/submit",
            when="before",
            nth=rig.transport.seen[("POST", "/api/kyc/ndBroker/proxyClient/submit")] + 1,
        )
        rig.settle(ref, on_crash=lambda crash: None)
        record = rig.record(ref)
        assert record.kyc.event_id == "resub-kyc2" and record.kyc.stage.value == "PASS"
        assert record.live_keys, "keys issued after the new PASS"
        assert not [o for o in rig.outbound() if o["type"] == "kyc.rejected" and o["event_id"] == "resub-kyc2"]
    finally:
        rig.close()


def test_an_event_that_reaches_a_customer_as_it_closes_is_reported_as_ignored(rig: Rig) -> None:
    """Review finding: an event stored after the closing run's last look, before the close was committed,
    used to vanish without the event.ignored report."""
    ev = events_for("closing")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.settle(ref)
    # the IP change is stored while the offboarding run lists the keys one last time before it closes: that run
    # never looks at it again
    rig.transport.after.append(("GET", "/api/v1/broker/nd/account/apikey", lambda: rig.publish(ev["ip"])))
    rig.publish(ev["offboard"])
    rig.settle(ref)
    record = rig.record(ref)
    assert record.closed_at_ms is not None
    ignored = [o["event_id"] for o in rig.outbound() if o["type"] == "event.ignored"]
    assert ignored == [ev["ip"]["id"]]
    assert ev["ip"]["id"] in record.events_at_close
    rig.settle(ref)
    assert [o["event_id"] for o in rig.outbound() if o["type"] == "event.ignored"] == ignored, "reported once"


def test_a_write_is_not_sent_once_its_lock_may_have_expired(rig: Rig) -> None:
    """Review finding (stalled worker): a process frozen between recording a write's intent and sending it must
    not send into a customer another worker may be settling. Past the send deadline a write is refused locally
    as not sent (reads still go); the pending intent is then resolved by reading like any other."""
    import time

    from worker.exchange.scope import CallScope

    stalled = rig.app.exchange.scoped(CallScope(send_deadline=time.monotonic() - 1))
    assert stalled.sub_accounts.page().total_num == 0  # a read is fine
    with pytest.raises(RetryableError, match="not sent"):
        stalled.sub_accounts.add(account_name="nd0frozen1x")
    assert rig.state()["subAccounts"] == [] and "add_sub_account" not in rig.state()["stats"]["requests"]
    window = rig.app.reconciler.services.send_window_s
    assert 0 < window < rig.settings.lock_ttl_ms / 1000


def test_a_block_marked_reported_is_raised_even_if_a_second_look_would_fail(redis_url: str, key_prefix: str) -> None:
    """Review finding: a run went idle with a fresh block (marked reported), then looked again because an event
    had arrived, and failed on the next step: the block was never raised, so never dead-lettered. Now a run
    that has marked blocks raises them at once and leaves the new events to a fresh run."""
    poor = _poor(redis_url, key_prefix)
    try:
        ev = events_for("lost-block")
        (ref,) = poor.publish(ev["created"], ev["kyc"])[:1]
        # an IP change is stored while the (refused) funding transfer is at the exchange
        poor.transport.after.append(("POST", "/api/v1/broker/nd/transfer", lambda: poor.publish(ev["ip"])))
        poor.transport.inner = _Unreachable(poor.transport.inner, path="/update-apikey", failures=1)
        for _ in range(2):  # the reconcile message, and dramatiq's retry of it
            with contextlib.suppress(RetryableError):
                poor.run(ref)
        poor.settle(ref)
        assert poor.record(ref).live_keys[0].ip_whitelist == ("198.51.101.7", "198.51.101.8")
        assert len(poor.blocked) == 1, "the refused funding line became exactly one dead letter"
        assert "fund:" in poor.blocked[0].reasons[0]
    finally:
        poor.close()


def test_a_failed_run_leaves_the_customer_due_whatever_happens_to_its_retry(rig: Rig) -> None:
    """Review finding: a run woken by its wake-up (no event, no intent for the stale scan to find) fails; dramatiq can
    drop the delayed retry in a Redis outage. The failed run leaves a backstop wake-up."""
    ev = events_for("backstop")
    (ref,) = rig.publish(ev["created"])
    inner = rig.transport.inner
    rig.transport.inner = _Unreachable(inner)
    rig.app.redis.zrem(rig.app.keys.due, ref)  # the scheduler claimed the wake-up and sent the message
    with pytest.raises(RetryableError):
        rig.app.reconciler.run(ref)
    now = int(rig.clock() * 1000)
    assert rig.app.due.next_due_ms(ref) == now + FAILURE_BACKSTOP_MS
    rig.transport.inner = inner
    rig.clock.advance_ms(FAILURE_BACKSTOP_MS)
    rig.settle(ref)
    assert rig.record(ref).sub_account is not None


def test_a_live_retry_chain_pushes_the_backstop_on_instead_of_starting_a_second_chain(rig: Rig) -> None:
    """Review finding: each failure armed the backstop only earlier-or-equal, so it fired 15 minutes after the
    first failure while dramatiq was still retrying: a second retry chain per customer every 15 minutes."""
    ev = events_for("chain")
    (ref,) = rig.publish(ev["created"])
    inner = rig.transport.inner
    rig.transport.inner = _Unreachable(inner)
    rig.app.redis.zrem(rig.app.keys.due, ref)
    for _ in range(4):  # the attempt and its retries, five minutes apart
        with pytest.raises(RetryableError):
            rig.app.reconciler.run(ref)
        rig.clock.advance_ms(5 * 60_000)
        assert rig.app.due.next_due_ms(ref) > int(rig.clock() * 1000), "not due while the chain is alive"
    rig.transport.inner = inner
    rig.settle(ref)  # the chain stopped: the backstop fires, the run finishes and replaces it
    assert rig.record(ref).sub_account is not None
    assert rig.app.redis.hget(rig.app.keys.backstops, ref) is None


def test_a_backstop_does_not_delay_an_earlier_real_wake_up(rig: Rig) -> None:
    ev = events_for("earlier")
    (ref,) = rig.publish(ev["created"])
    now = int(rig.clock() * 1000)
    rig.app.due.schedule(ref, now + 2_000)  # say, a rate-limit slot
    assert not rig.app.due.backstop(ref, now + 900_000)
    assert rig.app.due.next_due_ms(ref) == now + 2_000
    rig.app.redis.zadd(rig.app.keys.due, {ref: now + 90 * DAY_MS})  # a far wake-up (a key's age): comes later
    assert rig.app.due.backstop(ref, now + 900_000)
    assert rig.app.due.next_due_ms(ref) == now + 900_000


def test_blocks_marked_reported_are_raised_even_if_redis_fails_right_after(redis_url: str, key_prefix: str) -> None:
    """Review finding: after the marking commit, a Redis error (finish, schedule, release) propagated instead of
    StepsBlocked; the retry saw the block reported and raised nothing: never a dead letter."""
    poor = _poor(redis_url, key_prefix)
    try:
        ev = events_for("blip")
        (ref,) = poor.publish(ev["created"], ev["kyc"])[:1]
        due = poor.app.due
        real = due.finish_and_release

        def blip(lock: CustomerLock, wake_at_ms: int | None, *, seen_seq: int) -> bool:
            if any(b.reported for b in poor.app.store.load(ref).blocked.values()):  # type: ignore[union-attr]
                raise redis.ConnectionError("Redis went away")
            return real(lock, wake_at_ms, seen_seq=seen_seq)

        due.finish_and_release = blip  # type: ignore[method-assign]
        with pytest.raises(StepsBlocked) as raised:
            poor.app.reconciler.run(ref)
        assert "fund:" in raised.value.reasons[0]
    finally:
        poor.close()


def test_a_copy_of_a_stored_event_after_the_close_is_a_duplicate_not_ignored(rig: Rig) -> None:
    """At-least-once delivery: the offboarding's message is delivered again after it closed the customer (a worker
    died before its ack; the hand-off's re-send). The copy is of an event that took effect: a duplicate, told
    nothing — never ``event.ignored`` for the very event the upstream heard ``customer.offboarded`` for. So for a copy
    of any event stored before the close; an event that never reached the customer before it closed is still
    ignored."""
    ev = events_for("closed-copy")
    (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
    rig.settle(ref)
    rig.publish(ev["offboard"])
    rig.settle(ref)
    assert rig.record(ref).closed_at_ms is not None
    rig.publish(ev["offboard"], ev["kyc"])  # copies, delivered again
    assert rig.app.intake.accept(ev["ip"]).ignored  # type: ignore[union-attr]  # new: reaches a closed customer
    rig.settle(ref)
    ignored = [o["event_id"] for o in rig.outbound() if o["type"] == "event.ignored"]
    assert ignored == [ev["ip"]["id"]], ignored
