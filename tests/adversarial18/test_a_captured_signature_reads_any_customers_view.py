"""A signed request's signature covers ``"{id}.{timestamp}.{body}"`` only: not the method, not the path. A ``GET``
has an empty body, so the signature of one customer's view is the signature of every customer's view."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.api.live import Upstream, event, live_api, sign

pytestmark = pytest.mark.redis


def test_a_captured_signed_view_request_reads_another_customers_view(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: the upstream publishes events of two customers, then asks (signed, as docs/integration.md says:
    empty body, ``"{id}.{timestamp}."``) for Alice's view. Someone who sees that one request's headers (a proxy's
    or an APM's request log, a debugging dump, a TLS-terminating load balancer) sends the very same three headers
    to ``GET /v1/customers/bob``.

    What happens: 200 with Bob's view: his upstream id, stage, sub-account uid, live key ids, every funding line's
    currency, amount and state, the blocked steps' reasons. The same headers work for every customer id for the
    five minutes of the timestamp tolerance, and nothing records that the ``webhook-id`` was already used. (A
    captured ``POST /v1/events`` works the same way: its headers and body sent as a ``GET`` to any customer's
    path verify too, since ``GET`` reads and verifies a body as well.)

    Why it is wrong: the README promises "signed requests only" and the view is the upstream's personal and
    financial data per customer; a signature that does not name what it authorises is not an authorisation of
    that request. The replay window is not the point: even a single use reads a customer nobody asked about.

    Suggested fix: sign the request line too, e.g. verify against the body ``"{METHOD} {path}\\n{body}"`` (or
    require, for the view, a signed ``webhook-id`` that embeds the path), and remember each ``webhook-id`` for the
    tolerance window (``SET NX PX 600000``) so a captured request cannot be replayed at all; document the change in
    docs/integration.md and the Node example.

    Likelihood in production: low to moderate (the API port is reachable from the publisher only, but request
    headers are routinely logged by proxies and tracing); impact: any customer's view to whoever saw one request.
    """
    with live_api(redis_url, key_prefix) as served:
        upstream = Upstream(served.url)
        try:
            _replay(upstream)
        finally:
            upstream.close()


def _replay(upstream: Upstream) -> None:
    assert (
        upstream.post({"events": [event("customer.created", "alice"), event("customer.created", "bob")]}).status_code
        == 200
    )
    captured = sign(b"GET /v1/customers/alice")  # the request line is what a read signs
    assert upstream.client.get("/v1/customers/alice", headers=captured).status_code == 200, "the genuine request"

    replayed = upstream.client.get(f"/v1/customers/{quote('bob', safe='')}", headers=captured)
    if replayed.status_code == 200:
        assert replayed.json()["customer_id"] == "bob"  # the rig read Bob, not an error page
    assert replayed.status_code == 401, f"Alice's captured signature read Bob's view: {replayed.json()}"
