"""The per-process event cache (``worker.store.customers.EventCache``, added in f6fd4be) reads a customer's events
from the log position the cache held when the read began; if another thread's read evicts the customer from the LRU
before this read's ``extend``, ``extend`` keeps only the new events (``start > len(cached)``) and the run plans on a
fold of part of the customer's events (and leaves the cache holding that part)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.adversarial.helpers import approval
from tests.core.harness import Rig, events_for


def test_an_eviction_between_count_and_extend_plans_on_a_partial_fold(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outcome independent of delivery: an LRU eviction mid-read folds part of the events and re-issues generation 0."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("evicted", funding=())
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        rig.publish(ev["rotate"])
        rig.settle(ref)  # generation 1 live, generation 0 revoked after the grace
        assert [k.generation for k in rig.record(ref).live_keys] == [1]

        store = rig.app.store
        real = store._snapshot
        evicted: list[bool] = []

        def racing(ref_: str, *args: Any, **kwargs: Any) -> Any:
            if not evicted and kwargs.get("start", -1) > 0:
                evicted.append(True)
                store._events._entries.pop(ref_, None)  # another thread's read pushed this customer out of the LRU
            return real(ref_, *args, **kwargs)

        monkeypatch.setattr(store, "_snapshot", racing)
        rig.publish(approval("evicted", "again", 9, [("USDT", "100")]))  # a later approval with a funding line
        rig.settle(ref)
        assert evicted

        g0 = [k for k in rig.state()["apiKeys"] if k["label"] == "prov-g0000"]
        issued = [e for e in rig.outbound() if e["type"] == "api_key.issued"]
        assert len(g0) == 1, f"generation 0 issued {len(g0)} times; api_key.issued told {len(issued)} times"
    finally:
        rig.close()
