"""76eab75 refuses a body on ``GET /v1/customers/{id}``: a captured POST no longer reads a customer. A captured
*GET* still does, exactly as adv19 showed for the POST: 6a15eba binds a request id only to the first request it
is verified with, and the signature of a GET (over the empty body) covers neither the method nor the path."""

from __future__ import annotations

import pytest

from tests.api.live import Upstream, event, live_api, sign

pytestmark = pytest.mark.redis


def test_a_captured_get_whose_request_id_was_never_claimed_reads_another_customers_view(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: the upstream signs ``GET /v1/customers/alice`` (empty body). The request is captured on its way (an
    egress proxy's or APM's request log, as in adv18/adv19) but is not verified by the API: it does not reach it
    (a network error, a proxy time-out), or reaches it while Redis is unavailable (``_signed_body`` verifies, then
    ``claim`` raises: 503 before the id is remembered), and the upstream's client gives up, or reads Alice again
    later under a new id. Within the five minutes of the timestamp the captured headers are sent as
    ``GET /v1/customers/bob``.

    What happens: 200 with Bob's view. The replay has no body, so ``_signed_read`` (76eab75) lets it through; the
    id was never claimed, so it is claimed for Bob's path now.

    Why it is wrong: docs/integration.md says the id "is what stops the headers of one captured
    ``GET /v1/customers/A`` from reading customer B" — the very case it names still reads B whenever A's request
    did not reach a working API first; 76eab75 closed only the POST variant adv19 used.

    Suggested fix: make the signature cover the target: e.g. the upstream signs ``GET /v1/customers/alice`` as the
    payload of a GET (``"{id}.{ts}.GET /v1/customers/alice"``, documented, accepted alongside the empty payload
    during a migration window), or require the id of a read to carry the path (``webhook-id: read:alice:<uuid>``)
    and refuse one that names another customer.

    Likelihood: low (captured headers of a read the API never verified); impact: any one customer's personal and
    financial view per captured read.
    """
    with live_api(redis_url, key_prefix) as served:
        upstream = Upstream(served.url)
        try:
            assert upstream.post({"events": [event("customer.created", "bob")]}).status_code == 200
            captured = sign(b"GET /v1/customers/alice")  # never verified by the API
            replayed = upstream.client.get("/v1/customers/bob", headers=captured)
            if replayed.status_code == 200:
                assert replayed.json()["customer_id"] == "bob"
            assert replayed.status_code == 401, f"a captured read of Alice read Bob's view: {replayed.json()}"
        finally:
            upstream.close()
