"""The benchmark's floor: a dramatiq actor that does nothing, so the ``cost`` scenario can measure the framework's
own cost per message on the same broker, middleware and Redis as the worker. It exists only here: the production
runtime (``worker.runtime.broker.build_runtime``) declares no such actor.

The floor's worker processes run ``provisioner worker --queues noop --entrypoint bench.floor:setup``: the usual
set-up, then this actor declared on the process's broker. The publishing side declares it on its own runtime's
broker with ``declare_noop`` and sends through the returned actor.
"""

from __future__ import annotations

from typing import Any

import dramatiq

__all__ = ["ENTRYPOINT", "NOOP_ACTOR", "NOOP_QUEUE", "declare_noop", "setup"]

NOOP_ACTOR = "noop"
NOOP_QUEUE = "noop"
ENTRYPOINT = "bench.floor:setup"
"""The dramatiq CLI entry point of the floor's worker processes (``provisioner worker --entrypoint``)."""


def declare_noop(broker: dramatiq.Broker) -> Any:
    """Declare the no-op actor (queue ``noop``, no retries) on ``broker`` and return it."""

    def noop(payload: str) -> None:
        """Does nothing: the framework's own cost, for the benchmark's floor."""

    return dramatiq.actor(actor_name=NOOP_ACTOR, queue_name=NOOP_QUEUE, broker=broker, max_retries=0)(noop)


def setup() -> None:
    """Set up a worker process as ``worker.runtime.entrypoint.setup`` does, then declare the no-op actor on it."""
    from worker.runtime.entrypoint import setup as setup_worker

    setup_worker()
    declare_noop(dramatiq.get_broker())
