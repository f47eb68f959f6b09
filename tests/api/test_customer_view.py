"""GET /v1/customers/{id} after a real worker ran the customer: stage, the live key's id, each funding line's state
(committed, refused with its reason), the last change; 404 for a customer never seen."""

from __future__ import annotations

import pytest

from tests.api.live import Upstream, approval, event, live_api
from tests.runtime.rig import WorkerRig

pytestmark = pytest.mark.redis


def test_the_view_follows_the_worker(redis_url: str, key_prefix: str) -> None:
    with WorkerRig(redis_url, key_prefix) as rig, live_api(redis_url, key_prefix) as served:
        upstream = Upstream(served.url)
        approved = approval("view/1@x", eid="v1-approved")
        approved["data"]["funding"] = [{"currency": "USDT", "amount": "250"}, {"currency": "USDT", "amount": "5000"}]
        assert (
            upstream.post({"events": [event("customer.created", "view/1@x", eid="v1-created"), approved]}).status_code
            == 200
        )
        ref = rig.runtime.app.policy.naming.customer_ref("view/1@x")
        rig.wait_for(
            lambda: (
                (r := rig.runtime.app.store.load(ref))
                and r.live_keys
                and len(r.transfers) == 2
                and all(t.status.value != "accepted" for t in r.transfers.values())
            ),
            what="the key and both funding lines decided (the accepted transfer confirmed)",
        )
        view = upstream.customer("view/1@x")
        assert view.status_code == 200
        body = view.json()
        assert body["customer_id"] == "view/1@x" and body["stage"] == "active"
        assert [k["api_key"] for k in body["keys"]] == [k["apiKey"] for k in rig.live_keys()]
        lines = {line["line"]: line for line in body["funding"]}
        first, second = lines[f"{approved['id']}#0"], lines[f"{approved['id']}#1"]
        assert (first["state"], first["amount"]) == ("committed", "250")
        assert second["state"] == "refused" and "cap" in second["reason"]
        assert body["blocked"] == [] and body["last_change"]["at_ms"] > 0
        assert upstream.customer("view/2@x").status_code == 404
        upstream.close()
