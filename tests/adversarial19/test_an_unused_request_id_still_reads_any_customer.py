"""6a15eba binds a request id to the first request it is *verified* with. The signature still covers neither the
method nor the path, and ``GET /v1/customers/{id}`` still reads and verifies a body: signed headers whose request
never reached the API (or reached it while Redis was down: 503 before the claim) bind to whatever comes first."""

from __future__ import annotations

import json

import pytest

from tests.api.live import Upstream, event, live_api, sign

pytestmark = pytest.mark.redis


def test_a_captured_post_whose_request_id_was_never_claimed_reads_another_customers_view(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: the upstream signs ``POST /v1/events`` (a batch about customer Alice). The request is captured on its
    way (an egress proxy's or APM's request log, as in adv18) but does not reach the API, or reaches it while Redis
    is unavailable (503: ``_signed_body`` raises before the id is remembered), and the upstream's client gives up
    or, as most HTTP clients do, signs its next attempt under a new id. Within the five minutes of the timestamp,
    the captured headers and body are sent as ``GET /v1/customers/bob``.

    What happens: 200 with Bob's view. The GET route reads and verifies a body like the POST route; the signature
    does not name the method or the path; the id was never claimed, so the replay claims it for itself.

    Why it is wrong: api/request_ids.py says "a captured signature cannot be sent again for anything else" and
    docs/integration.md that the id "is what stops the headers of one captured GET /v1/customers/A from reading
    customer B": it stops a replay only after the genuine request has been verified first. One captured signature
    still reads any one customer.

    Suggested fix: refuse a body on ``GET`` (411/400 before verifying: a view request is signed over the empty
    body only), and bind what the signature covers to the request, e.g. a signed ``webhook-id`` prefix per route,
    or a v2 signature over ``METHOD path\\nbody`` (documented for the upstream).

    Likelihood: low (needs captured headers of a request that was not verified by the API first); impact: any
    one customer's personal and financial view per captured request.
    """
    with live_api(redis_url, key_prefix) as served:
        upstream = Upstream(served.url)
        try:
            assert upstream.post({"events": [event("customer.created", "bob")]}).status_code == 200
            body = json.dumps({"events": [event("customer.created", "alice")]}).encode()
            captured = {"content-type": "application/json", **sign(body)}  # never verified by the API
            replayed = upstream.client.request("GET", "/v1/customers/bob", content=body, headers=captured)
            if replayed.status_code == 200:
                assert replayed.json()["customer_id"] == "bob"
            assert replayed.status_code == 401, f"a captured POST's signature read Bob's view: {replayed.json()}"
        finally:
            upstream.close()
