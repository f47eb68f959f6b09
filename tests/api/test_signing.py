"""Every request to a signed route is refused with one uninformative 401 unless signed per Standard Webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.live import OTHER_SECRET, SECRET, LiveApi, Upstream, event, live_api, sign

pytestmark = pytest.mark.redis


def _post(upstream: Upstream, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    response = upstream.client.post("/v1/events", content=body, headers={"content-type": "application/json", **headers})
    return response.status_code, response.json()


def _refusals(upstream: Upstream) -> dict[str, tuple[int, dict[str, object]]]:
    body = json.dumps(event("customer.created", "sig-1")).encode()
    good = sign(body)
    stale = datetime.now(UTC) - timedelta(minutes=5, seconds=30)
    ahead = datetime.now(UTC) + timedelta(minutes=5, seconds=30)
    return {
        "no headers": _post(upstream, body, {}),
        "no signature": _post(upstream, body, {k: v for k, v in good.items() if k != "webhook-signature"}),
        "no id": _post(upstream, body, {k: v for k, v in good.items() if k != "webhook-id"}),
        "no timestamp": _post(upstream, body, {k: v for k, v in good.items() if k != "webhook-timestamp"}),
        "wrong signature": _post(
            upstream, body, {**good, "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
        ),
        "not base64": _post(upstream, body, {**good, "webhook-signature": "v1,@@@"}),
        "no version": _post(upstream, body, {**good, "webhook-signature": "garbage"}),
        "other version": _post(
            upstream, body, {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")}
        ),
        "stale": _post(upstream, body, sign(body, at=stale)),
        "from the future": _post(upstream, body, sign(body, at=ahead)),
        "timestamp not a number": _post(upstream, body, {**good, "webhook-timestamp": "yesterday"}),
        "other secret": _post(upstream, body, sign(body, secret=OTHER_SECRET)),
        "tampered body": _post(upstream, body.replace(b"sig-1", b"sig-2"), good),
        "id swapped": _post(upstream, body, {**good, "webhook-id": "msg_other"}),
        "timestamp moved": _post(
            upstream, body, {**good, "webhook-timestamp": str(int(good["webhook-timestamp"]) + 1)}
        ),
    }


def test_every_signature_failure_is_the_same_401(upstream: Upstream) -> None:
    answers = _refusals(upstream)
    assert {name: status for name, (status, _) in answers.items()} == dict.fromkeys(answers, 401)
    bodies = {json.dumps(body, sort_keys=True) for _, body in answers.values()}
    assert len(bodies) == 1, "a 401 must not say which check failed"
    assert upstream.customer("sig-1").status_code == 404, "no refused request was applied"


def test_a_signed_request_passes_and_any_configured_secret_verifies(redis_url: str, key_prefix: str) -> None:
    with live_api(redis_url, key_prefix, PROVISIONER_API_SECRETS=f"{OTHER_SECRET},{SECRET}") as served:
        for secret in (SECRET, OTHER_SECRET):
            upstream = Upstream(served.url, secret=secret)
            assert upstream.post(event("customer.created", f"rot-{secret[6:12]}")).status_code == 202
            upstream.close()


def test_several_signatures_verify_if_one_matches(upstream: Upstream) -> None:
    body = json.dumps(event("customer.created", "sig-many")).encode()
    good = sign(body)
    other = sign(body, secret=OTHER_SECRET)["webhook-signature"]
    headers = {**good, "webhook-signature": f"v1,AAAA {other} {good['webhook-signature']}"}
    assert _post(upstream, body, headers)[0] == 202


def test_the_customer_view_is_signed_too(api: LiveApi, upstream: Upstream) -> None:
    assert upstream.client.get("/v1/customers/anyone").status_code == 401
    assert upstream.client.get("/v1/customers/anyone", headers=sign(b"x")).status_code == 401
    assert upstream.customer("anyone").status_code == 404
    assert upstream.client.get("/healthz").status_code == 200, "health is unsigned"


def test_a_request_id_stands_for_one_request(upstream: Upstream) -> None:
    """A retry of the same request under its id passes (a lost answer); the id on another body, method or path —
    validly signed, as with captured headers — is the same uninformative 401."""
    body = json.dumps(event("customer.created", "sig-once")).encode()
    headers = sign(body)
    assert _post(upstream, body, headers)[0] == 202
    assert _post(upstream, body, sign(body, msg_id=headers["webhook-id"]))[0] == 200, "a retry: duplicate, not 401"
    other = json.dumps(event("customer.created", "sig-other")).encode()
    assert _post(upstream, other, sign(other, msg_id=headers["webhook-id"])) == _refusals(upstream)["no headers"]
    view = sign(b"GET /v1/customers/sig-once")
    assert upstream.client.get("/v1/customers/sig-once", headers=view).status_code == 200
    assert upstream.client.get("/v1/customers/sig-once", headers=view).status_code == 200, "the same read again"
    assert upstream.client.get("/v1/customers/sig-other", headers=view).status_code == 401
    assert upstream.client.get("/v1/customers/sig-once?x=1", headers=view).status_code == 401
    assert upstream.customer("sig-other").status_code == 404, "the refused request was not applied"
