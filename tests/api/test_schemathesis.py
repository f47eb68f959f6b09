"""Schemathesis against the live API from its own OpenAPI: no 5xx, and every answer (status, content type,
headers, body) is one the document declares. Requests are signed like an upstream's (a requests auth hook over
the exact bytes sent); the run is bounded (a few dozen examples per operation, well under a minute)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.live import LiveApi, live_api, sign

pytestmark = pytest.mark.redis
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class Signed(requests.auth.AuthBase):
    """Signs the prepared request's body (what goes on the wire) per Standard Webhooks; a GET signs its request
    line (the method and the path with its query as sent) in place of a body."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if request.method == "GET" and not body:
            body = f"GET {request.path_url}"
        raw = body.encode("utf-8") if isinstance(body, str) else body
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return request  # not UTF-8: cannot be signed with the library; the API answers 401
        request.headers.update(sign(raw))
        return request


@pytest.fixture(scope="module")
def served() -> Iterator[LiveApi]:
    import uuid

    import redis

    from tests.conftest import TEST_REDIS_URL

    prefix = f"st{uuid.uuid4().hex[:10]}"
    with live_api(TEST_REDIS_URL, prefix) as api:
        yield api
    client = redis.Redis.from_url(TEST_REDIS_URL)
    for key in client.scan_iter(f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="module")
def api_schema(served: LiveApi) -> Any:
    document = requests.get(f"{served.url}/openapi.json", timeout=10).json()
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.update(base_url=served.url)
    return loaded


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.auth = Signed()
        yield s


def test_api_conforms_to_its_openapi(api_schema: Any, session: requests.Session, served: LiveApi) -> None:
    """Every operation: generated requests (valid and not), each answer checked against the document."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 4
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case: schemathesis.Case) -> None:
            response = case.call(session=session, base_url=served.url, timeout=10)
            case.validate_response(response, checks=CHECKS)

        conforms()


def test_an_unsigned_schemathesis_request_is_refused(served: LiveApi) -> None:
    body = json.dumps({"events": [{"id": "x"}]}).encode()
    answer = requests.post(
        f"{served.url}/v1/events", data=body, headers={"content-type": "application/json"}, timeout=5
    )
    assert answer.status_code == 401


def test_every_answer_of_a_real_lifecycle_conforms(api_schema: Any, session: requests.Session, served: LiveApi) -> None:
    """Generated events rarely pass the clock window, so the answers of real ones (202, 200 duplicate, 200 batch,
    409, 422, the customer view, 404) are checked against the document too."""
    from tests.api.live import approval, event

    post = api_schema["/v1/events"]["POST"]
    view = api_schema["/v1/customers/{customer_id}"]["GET"]
    created = event("customer.created", "st-life")
    wrong = {**approval("st-life"), "data": {"permissions": ["general"], "ip_whitelist": ["nope"]}}
    bodies = [
        (created, 202),
        (created, 200),
        ({**created, "occurred_at": "2026-12-01T00:00:00Z"}, 409),
        (wrong, 422),
        ({"events": [approval("st-life"), created, wrong]}, 200),
    ]
    for body, status in bodies:
        case = post.Case(body=body, media_type="application/json")
        response = case.call(session=session, base_url=served.url, timeout=10)
        assert response.status_code == status, response.text
        case.validate_response(response, checks=CHECKS)
    for customer_id, status in (("st-life", 200), ("st-nobody", 404)):
        case = view.Case(path_parameters={"customer_id": customer_id})
        response = case.call(session=session, base_url=served.url, timeout=10)
        assert response.status_code == status, response.text
        case.validate_response(response, checks=CHECKS)
