"""The benchmark's no-op actor lives in bench/floor.py and is declared only by the benchmark."""

from __future__ import annotations

from dramatiq.brokers.stub import StubBroker
from prometheus_client import CollectorRegistry

from bench.floor import NOOP_ACTOR, NOOP_QUEUE, declare_noop
from tests.core.harness import settings_for
from worker.runtime.broker import build_runtime


def test_the_production_runtime_declares_no_benchmark_actor(redis_url: str, key_prefix: str) -> None:
    """A worker's broker carries our three actors on our three queues, and nothing the benchmark adds."""
    runtime = build_runtime(settings_for(redis_url, key_prefix), registry=CollectorRegistry())
    try:
        assert set(runtime.broker.get_declared_actors()) == {
            "handle_event",
            "handle_urgent_event",
            "reconcile_customer",
        }
        assert NOOP_QUEUE not in runtime.broker.get_declared_queues()
    finally:
        runtime.close()


def test_the_benchmark_declares_its_no_op_actor_on_the_broker_it_is_given() -> None:
    """``declare_noop`` puts the floor's actor, which does nothing and is never retried, on the broker."""
    broker = StubBroker()
    noop = declare_noop(broker)
    assert broker.get_declared_actors() == {NOOP_ACTOR}
    assert noop.queue_name == NOOP_QUEUE
    assert noop.options["max_retries"] == 0
    assert noop.fn("anything") is None
