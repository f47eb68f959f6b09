"""Events refused before any worker sees them (``provisioner publish``, the HTTP API: other processes) are counted
in Redis, so the worker's exporter shows them by reason class."""

from __future__ import annotations

import json

from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig
from worker.bootstrap import intake_sealer
from worker.runtime.admission import Admission, dramatiq_namespace
from worker.runtime.broker import QUEUES
from worker.runtime.metrics_collector import RedisCollector


def _refused(collector: RedisCollector) -> dict[tuple[str, str, str], float]:
    family = next(f for f in collector.collect() if f.name == "provisioner_events_refused_recorded")
    return {
        (s.labels["stage"], s.labels["reason"], s.labels["field"]): s.value
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_refusals_at_publish_and_at_the_api_reach_the_exporter(redis_url: str, key_prefix: str) -> None:
    """A bad event refused by the publisher or the API is counted by stage, reason class and top-level field."""
    with WorkerRig(redis_url, key_prefix) as rig:
        collector = RedisCollector(rig.settings, list(QUEUES))
        assert _refused(collector) == {}
        ev = events_for("r-pub")
        rig.publisher.publish("{not json")
        rig.publisher.publish({**ev["kyc"], "data": {"permissions": ["x"]}})
        rig.publisher.publish({**ev["created"], "data": {"unexpected-" + "x" * 80: 1}})
        app = rig.runtime.app
        admission = Admission(
            app.redis,
            app.keys,
            app.policy.naming,
            intake_sealer(rig.settings),
            proofs=app.proofs,
            currencies=frozenset(rig.settings.currencies),
            namespace=dramatiq_namespace(rig.settings.key_prefix),
        )
        # another customer: an id the publisher refused is refused again at the API (final for the id)
        api_ev = events_for("r-api")
        admission.admit([json.dumps({**api_ev["created"], "occurred_at": "yesterday"}), json.dumps(api_ev["created"])])
        admission.admit(
            [json.dumps({**api_ev["created"], "occurred_at": "2026-11-18T10:05:00Z"})]
        )  # same id, other content
        [again] = admission.admit([json.dumps(ev["created"])])
        assert again.status.value == "refused" and again.field == "id" and "refused before" in (again.reason or "")
        assert _refused(collector) == {
            ("publish", "malformed", "$"): 1,
            ("publish", "invalid", "data"): 2,
            ("api", "invalid", "occurred_at"): 1,
            ("api", "id_conflict", "id"): 1,
        }


def test_refusals_at_the_worker_are_counted_as_such(redis_url: str, key_prefix: str) -> None:
    """An id reused with other content passes the publisher's check and is refused by a worker's intake."""
    with WorkerRig(redis_url, key_prefix) as rig:
        collector = RedisCollector(rig.settings, list(QUEUES))
        ev = events_for("r-worker")
        rig.publisher.publish(ev["created"])
        rig.wait_for(lambda: rig.runtime.app.store.load(rig.runtime.app.policy.naming.customer_ref("r-worker")))
        rig.publisher.publish({**ev["created"], "occurred_at": "2026-11-18T10:05:00Z"})
        rig.wait_for(lambda: _refused(collector), what="the refusal counted")
        assert _refused(collector) == {("worker", "id_conflict", "id"): 1}
