"""POST /v1/events over real HTTP: each status code, batch order, limits; and the unsigned and read routes."""

from __future__ import annotations

import json

import pytest

from api.bodies import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_BODY_BYTES
from tests.api.live import LiveApi, Upstream, approval, event, sign
from worker.settings import Profile, Settings

pytestmark = pytest.mark.redis
PROBLEM = "application/problem+json"


def test_single_event_accepted_then_duplicate_then_conflict(upstream: Upstream) -> None:
    created = event("customer.created", "ev-1")
    first = upstream.post(created)
    assert (first.status_code, first.json()) == (202, {"id": "ev-1-created", "status": "accepted"})
    again = upstream.post(created)
    assert (again.status_code, again.json()) == (200, {"id": "ev-1-created", "status": "duplicate"})
    other = upstream.post({**created, "occurred_at": "2026-12-01T00:00:00Z"})
    assert other.status_code == 409 and other.headers["content-type"] == PROBLEM
    assert other.json()["field"] == "id" and other.json()["event_id"] == "ev-1-created"
    assert other.json()["status"] == 409 and other.json()["type"].endswith("/event-id-conflict")


def test_a_refused_event_is_a_422_problem_naming_the_field(upstream: Upstream) -> None:
    bad = approval("ev-2")
    bad["data"]["funding"] = [{"currency": "USDT", "amount": 250}]
    answer = upstream.post(bad)
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert (body["field"], body["event_id"]) == ("data.funding.0.amount", "ev-2-kyc_approved")
    assert "not a JSON number" in body["reason"]
    assert upstream.post(approval("ev-2")).status_code == 202, "a refusal holds nothing: the id is still free"


def test_kyc_documents_conflict_like_intake_does(upstream: Upstream) -> None:
    from tests.core.harness import kyc_documents

    with_docs = approval("ev-docs", kyc=kyc_documents("Ann"))
    assert upstream.post(with_docs).status_code == 202
    assert upstream.post(with_docs).status_code == 200
    other_docs = {**with_docs, "data": {**with_docs["data"], "kyc": kyc_documents("Bob")}}
    assert upstream.post(other_docs).status_code == 409


def test_a_batch_answers_each_event_in_input_order(upstream: Upstream) -> None:
    created, approved = event("customer.created", "ev-3"), approval("ev-3")
    assert upstream.post(created).status_code == 202
    batch = {
        "events": [
            approved,
            created,
            {"id": "x-1", "type": "customer.created"},
            {**created, "occurred_at": "2026-12-01T00:00:00Z"},
            "not an object",
            approved,
            event("customer.created", "ev-4"),
        ]
    }
    answer = upstream.post(batch)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    results = answer.json()["results"]
    assert [(r["id"], r["status"]) for r in results] == [
        ("ev-3-kyc_approved", "accepted"),
        ("ev-3-created", "duplicate"),
        ("x-1", "refused"),
        ("ev-3-created", "conflict"),
        (None, "refused"),
        ("ev-3-kyc_approved", "duplicate"),
        ("ev-4-created", "accepted"),
    ]
    assert results[2]["field"] == "customer_id" and results[2]["reason"]
    assert results[3]["field"] == "id"
    assert "field" not in results[0]


def test_malformed_bodies_are_400_problems(upstream: Upstream) -> None:
    for raw in (b"{nope", b'{"events": []}', b'{"events": {}}', b'{"events": [], "more": 1}'):
        answer = upstream.post(None, raw=raw)
        assert answer.status_code == 400, raw
        assert answer.headers["content-type"] == PROBLEM
    assert upstream.post([1, 2]).status_code == 422, "JSON that is not an object is a refused event"


def test_size_limits_are_413(upstream: Upstream) -> None:
    created = event("customer.created", "ev-5")
    too_many = {"events": [created] * (MAX_BATCH_EVENTS + 1)}
    assert upstream.post(too_many).status_code == 413
    padded = {"events": [{**created, "pad": "x" * 2048} for _ in range(MAX_BATCH_BYTES // 2048 + 1)][:MAX_BATCH_EVENTS]}
    assert len(json.dumps(padded)) > MAX_BATCH_BYTES
    assert upstream.post(padded).status_code == 413
    huge = b'{"x": "' + b"a" * MAX_BODY_BYTES + b'"}'
    answer = upstream.post(None, raw=huge)
    assert answer.status_code == 413 and answer.headers["content-type"] == PROBLEM
    assert upstream.customer("ev-5").status_code == 404, "nothing of a refused body was applied"


def test_content_type_other_than_json_is_415(upstream: Upstream) -> None:
    body = json.dumps(event("customer.created", "ev-6")).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        answer = upstream.client.post("/v1/events", content=body, headers={**sign(body), "content-type": content_type})
        assert answer.status_code == 415, content_type
    charset = {**sign(body), "content-type": "application/json; charset=utf-8"}
    assert upstream.client.post("/v1/events", content=body, headers=charset).status_code == 202


def test_health_readiness_and_unknown_routes(api: LiveApi, upstream: Upstream) -> None:
    assert upstream.client.get("/healthz").json() == {"status": "ok"}
    assert upstream.client.get("/readyz").json() == {"status": "ready"}
    missing = upstream.client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert upstream.client.get("/v1/events").status_code == 405


def test_readyz_is_503_when_redis_is_unreachable(key_prefix: str) -> None:
    from tests.api.live import live_api
    from tests.private_redis import free_port

    with live_api(f"redis://127.0.0.1:{free_port()}/0", key_prefix) as served:
        upstream = Upstream(served.url)
        answer = upstream.client.get("/readyz")
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        assert upstream.client.get("/healthz").status_code == 200, "alive, though not ready"
        posted = upstream.post(event("customer.created", "ev-7"))
        assert posted.status_code == 503 and posted.headers["retry-after"] == "5"
        assert posted.headers["content-type"] == PROBLEM
        assert upstream.customer("ev-7").status_code == 503
        upstream.close()


def test_the_api_profile_reads_no_exchange_credential_and_no_opening_key() -> None:
    """Production, with only what the API needs: it starts; the worker's secrets, even when present, are not read."""
    env = {
        "PROVISIONER_ENV": "production",
        "PROVISIONER_ALLOW_PLAINTEXT_REDIS": "true",
        "PROVISIONER_NAME_SECRET": "q7Vd2LmX9pRf4TzK8wBn3HsJ6yCg1NaE",
        "PROVISIONER_API_SECRETS": "whsec_" + "3q2+7wCm9Lx0aZ4kQ1vT8nB5yR6uE2sHdGfJcP7oWiM=",
        "PROVISIONER_INTAKE_PUBLIC_KEY": "k1=f0Iv2hGJcw1DU3N0Uqfl4sQx2VNYoSZ7K8vTnH4mY1E=",
        "PROVISIONER_EVENT_SIGNING_KEYS": "p1=9mVq3xR0cT7bL2nW8yK5hD1sF4gJ6aZ0pE3uI7oQ2vM=",
    }
    settings, defaulted = Settings.from_env(env, profile=Profile.API)
    assert defaulted == []
    leaked = {
        **env,
        "KUCOIN_API_SECRET": "s",
        "PROVISIONER_ENCRYPTION_KEYS": "x",
        "PROVISIONER_INTAKE_PRIVATE_KEYS": "y",
    }
    settings, _ = Settings.from_env(leaked, profile=Profile.API)
    assert (settings.api_secret, settings.encryption_keys, settings.intake_private_keys) == (None, None, None)
    with pytest.raises(Exception, match="PROVISIONER_API_SECRETS"):
        Settings.from_env({k: v for k, v in env.items() if k != "PROVISIONER_API_SECRETS"}, profile=Profile.API)
    with pytest.raises(Exception, match="KUCOIN_API_KEY"):
        Settings.from_env(env)  # the worker's profile still requires its secrets


def test_a_bug_is_a_500_problem_without_a_stack_trace(redis_url: str, key_prefix: str) -> None:
    from dataclasses import replace

    from prometheus_client import CollectorRegistry

    from api.bootstrap import build_services
    from tests.api.live import LiveApi, api_settings

    def broken(customer_id: str) -> None:
        raise RuntimeError("a bug in the view, with detail no caller should see")

    services = replace(
        build_services(api_settings(redis_url, key_prefix), registry=CollectorRegistry()), customer=broken
    )
    with LiveApi(services) as served:
        upstream = Upstream(served.url)
        answer = upstream.customer("anyone")
        assert answer.status_code == 500 and answer.headers["content-type"] == PROBLEM
        assert "detail no caller" not in answer.text and "Traceback" not in answer.text
        assert upstream.client.get("/healthz").status_code == 200, "the process serves on"
        upstream.close()


def test_an_api_with_another_name_secret_is_not_ready_and_admits_nothing(redis_url: str, key_prefix: str) -> None:
    """The deployment's state names its naming fingerprint (``worker.store.epoch.check_naming``): an API started
    with another ``PROVISIONER_NAME_SECRET`` would key every admission under other customer refs. It is not ready
    (the load balancer drains it) and admits nothing."""
    import redis

    from tests.api.live import live_api
    from worker.store.keys import Keys

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.hset(Keys(key_prefix).state, "naming", "0123456789abcdef:nd")  # a deployment named with another secret
    with live_api(redis_url, key_prefix) as served:
        upstream = Upstream(served.url)
        assert upstream.client.get("/readyz").status_code == 503
        posted = upstream.post(event("customer.created", "naming-1"))
        assert posted.status_code == 503 and posted.headers["content-type"] == PROBLEM
        upstream.close()
    assert not list(client.scan_iter(f"{key_prefix}:c:*")), "nothing admitted"
    client.close()
