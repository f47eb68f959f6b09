"""No secret, passphrase or KYC field appears in logs, exceptions, the journal, outbound, metrics or any Redis
value in plaintext, through a full lifecycle with proxy KYC, faults, retries and a dead letter."""

from __future__ import annotations

import base64
import io
import json

from prometheus_client import generate_latest

from sandbox import SandboxConfig
from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig
from tests.security.scan import hits, redis_values
from worker.logs import configure_logging, redact_secrets

PHOTO = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake photo bytes " * 40).decode()
DOCUMENTS = {
    "first_name": "Zelda",
    "last_name": "Quintessa",
    "issue_country": "DE",
    "birth_date": "1990-04-01",
    "identity_type": "passport",
    "identity_number": "P9988776655",
    "expire_date": "2099-01-01",
    "front_photo": PHOTO,
    "face_photo": PHOTO,
}


def test_nothing_secret_leaks_anywhere(redis_url: str, key_prefix: str) -> None:
    logs = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=logs)
    config = SandboxConfig(kyc_review_ms=0)
    with WorkerRig(
        redis_url, key_prefix, config=config, PROVISIONER_PROXY_KYC="true", PROVISIONER_KYC_POLL_SECONDS="1"
    ) as rig:
        # event ids of their own: an upstream that names events after its customer ids publishes them itself
        ev = {kind: {**event, "id": f"evt-{kind}"} for kind, event in events_for("leak-check").items()}
        kyc = {**ev["kyc"], "data": {**ev["kyc"]["data"], "kyc": DOCUMENTS}}
        rig.exchange.update_config({"faults": {"per_endpoint": {"add_sub_account_api": {"drop": 1.0}}}})
        for event in (ev["created"], kyc):
            rig.publisher.publish(event)
        rig.wait_for(lambda: rig.exchange.state_snapshot()["stats"]["faults"].get("drop"), what="a lost response")
        rig.exchange.update_config({"faults": {"per_endpoint": {"add_sub_account_api": {"drop": 0.0}}}})
        ref = rig.runtime.app.policy.naming.customer_ref("leak-check")
        rig.wait_for(
            lambda: (r := rig.runtime.app.store.load(ref)) and r.live_keys,
            timeout=30,
            what="a recorded key after KYC passed",
        )
        rig.publisher.publish(ev["rotate"])
        rig.wait_for(lambda: any(k["label"] == "prov-g0001" for k in rig.live_keys()), what="the rotated key")
        rig.runtime.actors.handle_event.send({"id": "bad", "type": "nope", "secret": "x"})  # a dead letter
        rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="a dead letter")
        issued = [v for k in rig.exchange.state.api_keys.values() for v in (k.secret, k.passphrase)]
        assert len(issued) >= 4, "the lost response's key and the rotated key each issued a secret"
        s = rig.settings
        ours = [
            s.secret(n)
            for n in (
                "api_secret",
                "api_passphrase",
                "broker_key",
                "trading_api_secret",
                "trading_api_passphrase",
                "name_secret",
            )
        ]
        signing = [p.partition("=")[2] for p in s.secret("event_signing_keys").split(",")]  # never in Redis either
        kyc_fields = ["Quintessa", "P9988776655", PHOTO[30:90]]
        secrets = issued + ours + signing + kyc_fields

        prefixes = [f"{key_prefix}:", f"{key_prefix}-dramatiq:"]
        assert hits(secrets, redis_values(rig.runtime.app.redis, prefixes)) == []
        assert hits(secrets, [("logs", logs.getvalue())]) == []
        assert hits(secrets, [("metrics", generate_latest(rig.registry).decode())]) == []
        letters = rig.runtime.dead_letters().list()
        assert hits(secrets, [("dead letters", json.dumps([d.summary() | {"tb": d.traceback} for d in letters]))]) == []
        assert ref in logs.getvalue(), "the logs did capture the run, naming the customer by its reference"
        assert "leak-check" not in logs.getvalue(), "the upstream customer id (personal data) is never logged"
        # and the secrets really were captured, sealed: the held ones open to what the exchange issued
        record = rig.runtime.app.store.load(ref)
        held = {rig.runtime.app.keyring.open(k.sealed)["secret"] for k in record.live_keys if k.sealed}
        assert held and held <= set(issued)


def test_redaction_processor_blanks_secret_fields_and_values() -> None:
    """Whatever a future log call passes, secret-named fields and secret-shaped values are blanked."""
    event = {
        "event": "x",
        "api_secret": "s3cr3t-value",
        "nested": {"passphrase": "p", "ok": "fine"},
        "note": "token gAAAAABlongfernettokenvalue1234567890 and " + PHOTO[:60],
        "headers": "KC-API-SIGN: abcdefghijklmnop",
    }
    out = redact_secrets(None, "info", dict(event))
    assert out["api_secret"] == "[redacted]"
    assert out["nested"] == {"passphrase": "[redacted]", "ok": "fine"}
    assert "gAAAAAB" not in out["note"] and "base64" not in out["note"]
    assert "abcdefghijklmnop" not in out["headers"]
