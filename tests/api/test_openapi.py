"""The OpenAPI document the API serves is the one committed in schema/openapi.json (``provisioner schema --write``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.live import Upstream

pytestmark = pytest.mark.redis
COMMITTED = Path(__file__).parents[2] / "schema" / "openapi.json"


def test_served_document_equals_the_committed_one(upstream: Upstream) -> None:
    served = upstream.client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(COMMITTED.read_text()), "run `provisioner schema --write` and commit"


def test_the_document_carries_the_event_contract_and_every_answer(upstream: Upstream) -> None:
    document = upstream.client.get("/openapi.json").json()
    events = document["paths"]["/v1/events"]["post"]
    assert set(events["responses"]) == {"200", "202", "400", "401", "409", "413", "415", "422", "503"}
    assert "Event" in document["components"]["schemas"] and "EventBatch" in document["components"]["schemas"]
    amount = document["components"]["schemas"]["FundingLine"]["properties"]["amount"]
    assert amount["pattern"].startswith("^([1-9]")
    assert set(document["paths"]) == {"/v1/events", "/v1/customers/{customer_id}", "/healthz", "/readyz"}
    assert "#/$defs/" not in json.dumps(document), "every reference resolves inside the document"
