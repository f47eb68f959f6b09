"""Webhooks in the running system: a real dramatiq worker starts the dispatcher, the metrics tell what happened,
and an operator lists, shows and retries a delivery dead letter with ``provisioner webhooks``."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from cli.main import main
from handlers.delivery import DELIVERY_UNTRACKED
from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig
from tests.webhooks.conftest import SECRET, FakeClock, Hooks
from tests.webhooks.keys import DEV_PRIVATE_JWK, open_jwe
from tests.webhooks.receiver import Receiver, Reply
from worker.runtime.metrics import Metrics
from worker.runtime.metrics_collector import RedisCollector
from worker.webhooks.store import DeliveryStore


def test_the_worker_delivers_every_outcome_by_webhook(redis_url: str, key_prefix: str) -> None:
    """`provisioner worker`'s processes run the dispatcher: a published lifecycle reaches the receiver, verified,
    in sequence order, and the attempt counters say so."""
    with (
        Receiver(SECRET) as receiver,
        WorkerRig(
            redis_url, key_prefix, PROVISIONER_WEBHOOK_URL=receiver.url, PROVISIONER_WEBHOOK_SECRET=SECRET
        ) as rig,
    ):
        ev = events_for("worker-hooked")
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["kyc"])
        rig.wait_for(
            lambda: (
                {"sub_account.created", "api_key.issued", "funding.completed"}
                <= {r.event["type"] for r in receiver.delivered()}
            ),
            what="the outcomes at the receiver",
        )
        # the receiver answers before the dispatcher records the delivery: wait for the counters too
        rig.wait_for(
            lambda: (
                rig.metric("provisioner_webhook_deliveries_total", outcome="delivered") >= 3
                and rig.metric("provisioner_webhook_attempts_total", answer="2xx") >= 3
            ),
            what="the delivery counters",
        )
    got = receiver.delivered()
    assert all(r.verified for r in got)
    assert [r.event["sequence"] for r in got] == list(range(1, len(got) + 1))
    (issued,) = [r.event for r in got if r.event["type"] == "api_key.issued"]
    assert open_jwe(issued["credentials"]["jwe"], DEV_PRIVATE_JWK)[1]["api_key"] == issued["api_key"]


def gauges(hooks: Hooks) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(RedisCollector(hooks.settings, ["events"]))
    names = ("undelivered", "oldest_undelivered_age_seconds", "dead_letters")
    return {n: registry.get_sample_value(f"provisioner_webhook_{n}") or 0.0 for n in names}


def test_the_oldest_undelivered_age_grows_while_the_receiver_fails_or_no_dispatcher_runs(hooks: Hooks) -> None:
    hooks.emit("c-age")
    time.sleep(1.1)
    before = gauges(hooks)
    assert before["oldest_undelivered_age_seconds"] >= 1.0, "no dispatcher has even admitted it"
    hooks.receiver.plan = lambda event: Reply(500)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    hooks.dispatcher(observe=metrics.observe_webhook).drain()
    failing = gauges(hooks)
    assert failing["undelivered"] == 1 and failing["oldest_undelivered_age_seconds"] >= 1.0
    assert registry.get_sample_value("provisioner_webhook_attempts_total", {"answer": "5xx"}) == 1
    assert registry.get_sample_value("provisioner_webhook_deliveries_total", {"outcome": "retry"}) == 1
    hooks.receiver.plan = lambda event: Reply(204)
    clock = FakeClock()
    clock.advance_ms(60_000)
    hooks.dispatcher(clock=clock).drain()
    assert gauges(hooks) == {"undelivered": 0, "oldest_undelivered_age_seconds": 0.0, "dead_letters": 0}


@pytest.mark.webhook_settings(PROVISIONER_WEBHOOK_RETRY_HORIZON_SECONDS="600")
def test_an_operator_lists_shows_and_retries_a_dead_letter(hooks: Hooks) -> None:
    hooks.receiver.plan = lambda event: Reply(410)
    (event_id,) = hooks.emit("c-cli")
    clock = FakeClock()
    dispatcher = hooks.dispatcher(clock=clock)
    store = DeliveryStore(hooks.redis, hooks.keys)
    for _ in range(500):
        dispatcher.drain()
        due = store.next_due_ms()
        if due is None:
            break
        clock.to_ms(due)
    (letter,) = store.dead_letters()
    assert gauges(hooks)["dead_letters"] == 1
    env = {
        "REDIS_URL": hooks.settings.redis_url,
        "PROVISIONER_REDIS_PREFIX": hooks.settings.key_prefix,
        "PROVISIONER_WEBHOOK_URL": hooks.receiver.url,
        "PROVISIONER_WEBHOOK_SECRET": SECRET,
    }
    runner = CliRunner()
    listed = runner.invoke(main, ["webhooks", "list", "--json"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0
    summary = json.loads(listed.stdout)
    assert [d["event_id"] for d in summary["dead_letters"]] == [event_id]
    assert summary["dead_letters"][0]["last_status"] == 410 and summary["undelivered"] == 0
    shown = runner.invoke(main, ["webhooks", "show", letter.entry_id], env=env, catch_exceptions=False)
    assert shown.exit_code == 0 and "HTTP 410" in shown.stdout and event_id in shown.stdout
    missing = runner.invoke(main, ["webhooks", "show", "1-0"], env=env)
    assert missing.exit_code == 1 and "no delivery dead letter" in missing.output
    narrow = runner.invoke(main, ["webhooks", "list"], env={**env, "COLUMNS": "80"}, catch_exceptions=False)
    assert letter.entry_id in narrow.stdout and "…" not in narrow.stdout and "HTTP 410" in narrow.stdout
    prefix = letter.entry_id[:-1]  # "<ms>-" names the one entry of that millisecond
    by_prefix = runner.invoke(main, ["webhooks", "show", prefix], env=env, catch_exceptions=False)
    assert by_prefix.exit_code == 0 and event_id in by_prefix.stdout

    hooks.receiver.plan = lambda event: Reply(200)
    retried = runner.invoke(main, ["webhooks", "retry", prefix], env=env, catch_exceptions=False)
    assert f"{letter.entry_id}: queued again" in retried.stdout and "1 queued again" in retried.stdout
    again = runner.invoke(main, ["webhooks", "retry", letter.entry_id], env=env, catch_exceptions=False)
    assert "0 queued again" in again.stdout, "safe to run twice"
    hooks.dispatcher().drain()
    assert hooks.receiver.delivered()[-1].webhook_id == event_id
    assert store.dead_letters() == []


def test_an_operator_disables_delivery_tracking_after_switching_webhooks_off(hooks: Hooks) -> None:
    """`webhooks disable` refuses while events wait (a waiting api_key.issued keeps its predecessor live), then,
    with --yes, stops tracking: rotations no longer wait for deliveries, in any process."""
    hooks.receiver.plan = lambda event: Reply(503)
    hooks.emit("c-off")
    store = DeliveryStore(hooks.redis, hooks.keys)
    store.admit(1_000)
    assert store.undelivered() == 1
    env = {"REDIS_URL": hooks.settings.redis_url, "PROVISIONER_REDIS_PREFIX": hooks.settings.key_prefix}
    runner = CliRunner()
    refused = runner.invoke(main, ["webhooks", "disable"], env=env)
    assert refused.exit_code == 1 and "1 event(s) still wait" in refused.output
    assert store.key_delivered_at("c-off", "k1", 500, webhooks_here=False) == 1_000, "still tracked"
    done = runner.invoke(main, ["webhooks", "disable", "--yes"], env=env, catch_exceptions=False)
    assert done.exit_code == 0 and "no longer tracked" in done.stdout
    assert store.key_delivered_at("c-off", "k1", 500, webhooks_here=False) == DELIVERY_UNTRACKED
    # a dispatcher of the old rollout passes once more: it records nothing while disabled
    store.admit(2_000)
    assert store.key_delivered_at("c-off", "k1", 500, webhooks_here=False) == DELIVERY_UNTRACKED
    enabled = runner.invoke(main, ["webhooks", "enable"], env=env, catch_exceptions=False)
    assert enabled.exit_code == 0 and "tracked from the next dispatcher pass" in enabled.stdout
    store.admit(3_000)
    assert store.key_delivered_at("c-off", "k2", 4_000, webhooks_here=False) is None, "tracked again: wait"
