"""The worker as dramatiq runs it: retries by class, dead letters with the final error, replay, metrics."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig
from tests.signed import signed_message
from worker.intake import Refused
from worker.publish import Published


def test_published_events_are_provisioned_by_the_worker(redis_url: str, key_prefix: str) -> None:
    with WorkerRig(redis_url, key_prefix) as rig:
        ev = events_for("w-alice")
        for name in ("created", "kyc"):
            assert isinstance(rig.publisher.publish(ev[name]), Published)
        rig.wait_for(lambda: rig.live_keys(), what="a key")
        state = rig.exchange.state_snapshot()
        assert len(state["subAccounts"]) == 1
        assert [t["amount"] for t in state["transfers"]] == ["250"]
        rig.wait_for(
            lambda: rig.metric("provisioner_messages_total", actor="handle_event", outcome="ok") == 2,
            what="two messages counted",
        )
        assert rig.metric("provisioner_events_received_total", type="customer.kyc_approved") == 1
        assert rig.metric("provisioner_actions_total", action="IssueApiKey", outcome="ok") == 1


def test_publish_refuses_bad_events_without_enqueueing(redis_url: str, key_prefix: str) -> None:
    with WorkerRig(redis_url, key_prefix) as rig:
        bad = {**events_for("w-bad")["kyc"], "data": {"permissions": ["withdrawal"], "ip_whitelist": ["1.2.3.4"]}}
        refused = rig.publisher.publish(bad)
        assert isinstance(refused, Refused)
        assert refused.field == "data.permissions.0"
        assert rig.runtime.broker.client.llen(f"{rig.runtime.broker.namespace}:events") == 0


def test_permanent_failure_dead_letters_at_once_with_the_reason_and_replay_fixes_it(
    redis_url: str, key_prefix: str
) -> None:
    """The Special Account cannot pay: blocked at once (no retries); fix the cause, replay, twice is harmless."""
    config = SandboxConfig(initial_balances={"MAIN": {"USDT": "10"}, "TRADE": {}})
    with WorkerRig(redis_url, key_prefix, config=config) as rig:
        ev = events_for("w-poor")
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["kyc"])
        dlq = rig.runtime.dead_letters()
        (letter,) = rig.wait_for(lambda: dlq.list(), what="a dead letter")
        assert letter.kind == "blocked"
        assert "account.available.amount" in letter.reason and "fund:" in letter.reason
        assert letter.retries == 0, "dead-lettered at once, without retries"
        assert "StepsBlocked" in letter.traceback
        assert rig.live_keys(), "the key is issued even though funding is blocked"
        assert rig.metric("provisioner_dead_letters_total", queue=letter.queue, kind="blocked") == 1

        rig.exchange.credit(rig.exchange.broker_uid, "USDT", "MAIN", "1000")
        assert dlq.replay(letter.message_id)
        assert not dlq.replay(letter.message_id), "a second replay finds nothing to do"
        rig.wait_for(
            lambda: [t for t in rig.exchange.state_snapshot()["transfers"] if t["amount"] == "250"],
            what="the funding transfer",
        )
        time.sleep(0.3)
        transfers = rig.exchange.state_snapshot()["transfers"]
        assert sum(Decimal(t["amount"]) for t in transfers if t["direction"] == "OUT") == 250
        assert dlq.list() == []


def test_invalid_event_in_the_queue_is_dead_lettered_as_invalid(redis_url: str, key_prefix: str) -> None:
    """A signed event that skipped publish validation is refused by the actor and dead-lettered, never retried."""
    with WorkerRig(redis_url, key_prefix) as rig:
        actor = rig.runtime.actors.handle_event
        rig.runtime.broker.enqueue(
            signed_message(actor, {"id": "x", "type": "customer.exploded"}, rig.runtime.app.proofs)
        )
        dlq = rig.runtime.dead_letters()
        (letter,) = rig.wait_for(lambda: dlq.list(), what="a dead letter")
        assert letter.kind == "invalid_event"
        assert "type" in letter.reason
        assert rig.metric("provisioner_events_refused_total", type="unknown", reason="invalid", field="type") == 1


def test_transient_read_errors_are_retried_with_backoff(redis_url: str, key_prefix: str, caplog) -> None:
    """5xx on the key listing (a read) is retryable: the message is retried and the customer converges, and the
    retry is our one warning line, not an ERROR with a traceback from dramatiq."""
    caplog.set_level(logging.INFO, logger="dramatiq")
    with WorkerRig(redis_url, key_prefix) as rig:
        ev = events_for("w-flaky")
        rig.exchange.update_config(
            {"faults": {"per_endpoint": {"add_sub_account_api": {"drop": 1.0}, "get_sub_account_api": {"5xx": 1.0}}}}
        )
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["kyc"])
        rig.wait_for(
            lambda: rig.metric("provisioner_retries_total", actor="reconcile_customer", kind="retryable") >= 1,
            what="a retry",
        )
        rig.exchange.update_config(
            {"faults": {"per_endpoint": {"add_sub_account_api": {"drop": 0.0}, "get_sub_account_api": {"5xx": 0.0}}}}
        )
        ref = rig.runtime.app.policy.naming.customer_ref("w-flaky")

        def ours_live() -> bool:  # a key created by the dropped request (secret lost) is revoked, then replaced
            record = rig.runtime.app.store.load(ref)
            held = {k.api_key for k in record.live_keys} if record is not None else set()
            return bool(held) and held == {k["apiKey"] for k in rig.live_keys()}

        rig.wait_for(ours_live, what="a key we hold, and no other")
        time.sleep(0.3)
        assert len(rig.live_keys()) == 1
    loud = [r for r in caplog.records if r.name.startswith("dramatiq") and r.levelno >= logging.ERROR]
    assert loud == [], [r.getMessage() for r in loud]


def test_auth_failures_retry_slowly_and_count_loudly(redis_url: str, key_prefix: str) -> None:
    """A wrong API secret is auth/config: not dead-lettered, retried after the slow delay, counted."""
    with WorkerRig(redis_url, key_prefix, KUCOIN_API_SECRET="wrong-secret") as rig:
        rig.publisher.publish(events_for("w-auth")["created"])
        rig.wait_for(
            lambda: rig.metric("provisioner_auth_failures_total", endpoint="add_sub_account", code="400004") >= 1,
            what="an auth failure",
        )
        rig.wait_for(
            lambda: rig.metric("provisioner_retries_total", actor="handle_event", kind="auth_config") >= 1,
            what="a slow retry",
        )
        assert rig.runtime.dead_letters().list() == []


@pytest.mark.parametrize("threads", [1])
def test_rotation_grace_wakes_up_through_the_scheduler(redis_url: str, key_prefix: str, threads: int) -> None:
    """The old key is revoked when the grace period ends, with no new event: the due scheduler wakes it."""
    with WorkerRig(redis_url, key_prefix, threads=threads) as rig:
        ev = events_for("w-rot")
        for name in ("created", "kyc", "rotate"):
            rig.publisher.publish(ev[name])
        rig.wait_for(lambda: len(rig.exchange.state_snapshot()["apiKeys"]) == 2, what="the rotated key")
        rig.wait_for(
            lambda: len(rig.live_keys()) == 1 and rig.live_keys()[0]["label"] == "prov-g0001",
            timeout=10,
            what="the old key revoked after grace",
        )


def test_metrics_after_a_known_sequence_scraped_over_http(redis_url: str, key_prefix: str) -> None:
    """Two customers onboarded, one offboarded, one bad event: the scrape says exactly that."""
    import httpx
    from prometheus_client import start_http_server
    from prometheus_client.parser import text_string_to_metric_families

    from tests.private_redis import free_port
    from worker.runtime.broker import QUEUES
    from worker.runtime.metrics_collector import RedisCollector

    with WorkerRig(redis_url, key_prefix) as rig:
        rig.registry.register(RedisCollector(rig.settings, list(QUEUES)))
        port = free_port()
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=rig.registry)
        try:
            first, second = events_for("m-one"), events_for("m-two", funding=(("BTC", "0.25"),))
            for event in (first["created"], first["kyc"], second["created"], second["kyc"]):
                rig.publisher.publish(event)
            rig.wait_for(lambda: len(rig.live_keys()) == 2, what="two keys")
            rig.publisher.publish(first["offboard"])
            junk = signed_message(
                rig.runtime.actors.handle_event, {"id": "junk", "type": "customer.created"}, rig.runtime.app.proofs
            )
            rig.runtime.broker.enqueue(junk)
            rig.wait_for(lambda: len(rig.live_keys()) == 1 and rig.runtime.dead_letters().list(), what="offboarded")
            time.sleep(0.3)
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        finally:
            server.shutdown()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("provisioner_events_received_total", type="customer.kyc_approved") == 2
    assert value("provisioner_events_received_total", type="customer.offboarded") == 1
    refused = value("provisioner_events_refused_total", type="customer.created", reason="invalid", field="customer_id")
    assert refused == 1
    assert value("provisioner_keys_active") == 1
    assert value("provisioner_keys_issued") == 2
    assert value("provisioner_keys_revoked") == 1
    assert value("provisioner_funds_transferred_total", currency="USDT", direction="OUT") == 250
    assert value("provisioner_funds_transferred_total", currency="BTC", direction="OUT") == 0.25
    assert value("provisioner_funds_transferred_total", currency="USDT", direction="IN") == 250
    assert value("provisioner_dead_letters", queue="events") == 1
    assert value("provisioner_dead_letters_total", queue="events", kind="invalid_event") == 1
    assert value("provisioner_intents_pending") == 0
    assert value("provisioner_events_unstored") == 0
    assert value("provisioner_exchange_requests_total", endpoint="add_sub_account", status="200", code="200000") == 2
    assert value("provisioner_exchange_ratelimit_remaining", pool="Broker") > 0
    assert value("provisioner_queue_depth", queue="events") == 0


def test_workers_alive_counts_worker_processes_not_publishers(redis_url: str, key_prefix: str) -> None:
    """The gauge behind WorkerDown: a running worker's scheduler reports; a publisher does not."""
    from worker.runtime.broker import QUEUES
    from worker.runtime.metrics_collector import RedisCollector

    with WorkerRig(redis_url, key_prefix) as rig:
        collector = RedisCollector(rig.settings, list(QUEUES))

        def alive() -> float:
            family = next(f for f in collector.collect() if f.name == "provisioner_workers_alive")
            return family.samples[0].value

        rig.wait_for(lambda: alive() == 1, what="the worker's heartbeat")
        rig.publisher.publish(events_for("hb")["created"])
        assert alive() == 1


def test_an_event_whose_message_was_lost_is_still_provisioned(redis_url: str, key_prefix: str) -> None:
    """Intake stored the event but its message vanished (dramatiq drops a retry it cannot enqueue while Redis is
    down): the stale scan finds the customer in the inbox and reconciles it."""
    with WorkerRig(redis_url, key_prefix) as rig:
        rig.runtime.scheduler._stale_ms = 500
        rig.runtime.scheduler._sweep_every = 0.2
        ev = events_for("w-lost")
        for name in ("created", "kyc"):
            assert not isinstance(rig.runtime.app.intake.accept(ev[name]), Refused)  # stored, never enqueued
        rig.wait_for(lambda: rig.live_keys(), timeout=10, what="the stale scan to provision the customer")
        app = rig.runtime.app
        rig.wait_for(lambda: app.redis.zcard(app.keys.inbox) == 0, what="the inbox to empty")
