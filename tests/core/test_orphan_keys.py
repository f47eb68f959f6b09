"""A key the exchange created but whose answer was lost is an orphan: its secret is gone, so it is deleted and the
upstream told ``api_key.revoked`` (it may have heard of it before a loss of our state). A delete whose own answer is
lost must still end in that event once the listing shows the key gone."""

from __future__ import annotations

import pytest

from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for

pytestmark = pytest.mark.redis


def test_an_orphan_whose_delete_answer_was_lost_is_still_told_revoked(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        drops = {"add_sub_account_api": 1.0, "delete_sub_account_api": 1.0}
        rig.exchange.update_config({"faults": {"per_endpoint": {e: {"drop": r} for e, r in drops.items()}}})

        def heal() -> None:
            faults = rig.state()["stats"]["faults"].get("drop", 0)
            if faults >= 1:
                drops["add_sub_account_api"] = 0.0  # the issuance was lost once: its key is the orphan
            if faults >= 2:
                drops["delete_sub_account_api"] = 0.0  # the orphan's delete was committed, its answer lost
            rig.exchange.update_config({"faults": {"per_endpoint": {e: {"drop": r} for e, r in drops.items()}}})

        ev = events_for("orphan-lost-delete", funding=())
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref, after_run=heal)
        assert rig.state()["stats"]["faults"]["drop"] == 2, "precondition: both answers were lost"
        record = rig.record(ref)
        held = {k.api_key for k in record.keys}
        orphans = {k["apiKey"] for k in rig.state()["apiKeys"] if k["apiKey"] not in held}
        assert len(orphans) == 1 and all(
            k["deletedAt"] is not None for k in rig.state()["apiKeys"] if k["apiKey"] in orphans
        ), "precondition: one orphan, deleted"
        assert len(record.live_keys) == 1, "the key was issued again"
        told = {e["api_key"] for e in outbound_of(rig, "api_key.revoked")}
        assert orphans <= told, f"the orphan {orphans} was deleted and never told revoked (told: {told})"
    finally:
        rig.close()
