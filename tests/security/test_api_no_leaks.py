"""Through the HTTP API: bodies with KYC documents are never logged, and no KYC field, signing secret or name
secret reaches a log line, a metric, an HTTP answer or any Redis value in plaintext; the worker alone opens the
documents (a KYC check passes, one that names REJECT is rejected: the worker read them)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from prometheus_client import generate_latest

from sandbox import SandboxConfig
from tests.api.live import SECRET, Upstream, approval, event, live_api
from tests.runtime.rig import WorkerRig
from tests.security.scan import hits, redis_values
from worker.logs import configure_logging
from worker.settings import DEV_DEFAULT_API_SETTINGS

pytestmark = pytest.mark.redis
PHOTO = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8 a face, not a real one " * 40).decode()


def documents(first_name: str) -> dict[str, str]:
    return {
        "first_name": first_name,
        "last_name": "Quintessa",
        "issue_country": "DE",
        "birth_date": "1990-04-01",
        "identity_type": "passport",
        "identity_number": "P9988776655",
        "expire_date": "2099-01-01",
        "front_photo": PHOTO,
        "face_photo": PHOTO,
    }


def test_kyc_documents_and_secrets_leak_nowhere_through_the_api(redis_url: str, key_prefix: str) -> None:
    logs = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=logs)
    config = SandboxConfig(kyc_review_ms=0)
    answers: list[str] = []
    with (
        WorkerRig(
            redis_url, key_prefix, config=config, PROVISIONER_PROXY_KYC="true", PROVISIONER_KYC_POLL_SECONDS="1"
        ) as rig,
        live_api(redis_url, key_prefix) as served,
    ):
        upstream = Upstream(served.url)
        passes = approval("kyc-pass", kyc=documents("Zelda"))
        rejected = approval("kyc-reject", kyc=documents("REJECT"))
        bad_ip = approval("kyc-bad", kyc=documents("Zelda"))
        bad_ip["data"]["ip_whitelist"] = ["not-an-ip"]
        for document, status in [
            (event("customer.created", "kyc-pass"), 202),
            (passes, 202),
            (passes, 200),
            ({**passes, "data": {**passes["data"], "kyc": documents("Other")}}, 409),
            (bad_ip, 422),
            ({"events": [event("customer.created", "kyc-reject"), rejected, bad_ip]}, 200),
        ]:
            answer = upstream.post(document)
            assert answer.status_code == status, answer.text
            answers.append(answer.text)
        ref = rig.runtime.app.policy.naming.customer_ref("kyc-pass")
        rig.wait_for(lambda: (r := rig.runtime.app.store.load(ref)) and r.live_keys, timeout=30, what="a key after KYC")
        rig.wait_for(lambda: upstream.customer("kyc-reject").json()["stage"] == "kyc_rejected", what="the rejection")
        view = upstream.customer("kyc-pass").json()
        answers.append(json.dumps(view))
        assert view["stage"] == "active" and view["keys"] and "secret" not in json.dumps(view).lower()
        secrets = [
            "Zelda",
            "Quintessa",
            "P9988776655",
            PHOTO[40:100],
            SECRET,
            SECRET.removeprefix("whsec_"),
            DEV_DEFAULT_API_SETTINGS["PROVISIONER_NAME_SECRET"],
        ]
        metrics = generate_latest(served.services.metrics.registry).decode() + generate_latest(rig.registry).decode()
        assert hits(secrets, [("logs", logs.getvalue())]) == []
        assert hits(secrets, [("metrics", metrics)]) == []
        assert hits(secrets, [("answers", "\n".join(answers))]) == []
        prefixes = [f"{key_prefix}:", f"{key_prefix}-dramatiq:"]
        assert hits(secrets, redis_values(rig.runtime.app.redis, prefixes)) == []
        request_lines = [json.loads(line) for line in logs.getvalue().splitlines() if '"request"' in line]
        assert len([r for r in request_lines if r.get("route") == "/v1/events"]) == 6, "one line per request"
        fields = ("body", "first_name", "identity_number", "face_photo", "data", "$envelope")
        assert not [r for r in request_lines if any(f in json.dumps(r) for f in fields)]
        upstream.close()
