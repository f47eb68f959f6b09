"""Personal data (KYC documents, the upstream's customer id) never reaches a log line, a dead letter or the CLI,
even when an attacker with access to Redis puts a raw, unsealed KYC event straight onto the dramatiq queue."""

from __future__ import annotations

import base64
import io
import json
import logging

from click.testing import CliRunner

from cli.main import main
from sandbox import SandboxConfig, start_server
from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig
from tests.security.scan import hits, redis_values
from tests.signed import signed_message
from worker.logs import configure_logging, redact_secrets

PHOTO = "data:image/png;base64," + base64.b64encode(b"\x89PNG zelda's face " * 40).decode()
DOCUMENTS = {
    "first_name": "Zelphinia",
    "last_name": "Quintessa",
    "issue_country": "DE",
    "birth_date": "1957-03-14",
    "identity_type": "passport",
    "identity_number": "P9988776655",
    "expire_date": "2087-06-29",
    "front_photo": PHOTO,
    "backend_photo": PHOTO,
    "face_photo": PHOTO,
}
CUSTOMER_ID = "zelphinia.quintessa@example.org"
PERSONAL = [
    DOCUMENTS["first_name"],
    DOCUMENTS["last_name"],
    DOCUMENTS["birth_date"],
    DOCUMENTS["identity_number"],
    DOCUMENTS["expire_date"],
    PHOTO[22:80],
    CUSTOMER_ID,
]
"""Every KYC field value that identifies the person (country and document type alone do not), and the upstream
customer id (an e-mail address)."""


def test_a_raw_kyc_event_on_the_queue_leaks_nowhere(redis_url: str, key_prefix: str) -> None:
    logs = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=logs)
    with WorkerRig(redis_url, key_prefix, config=SandboxConfig(), PROVISIONER_PROXY_KYC="true") as rig:
        ev = {kind: {**event, "id": f"evt-{kind}"} for kind, event in events_for(CUSTOMER_ID).items()}
        rig.publisher.publish(ev["created"])
        ref = rig.runtime.app.policy.naming.customer_ref(CUSTOMER_ID)
        rig.wait_for(lambda: (r := rig.runtime.app.store.load(ref)) and r.sub_account, what="the sub-account")
        raw = {**ev["kyc"], "data": {**ev["kyc"]["data"], "kyc": DOCUMENTS}}
        # straight onto the queue, unsealed, by a publisher that holds the signing key but skipped sealing (an
        # attacker's unsigned copy is refused earlier still: tests/security/test_event_proof.py)
        rig.runtime.broker.enqueue(signed_message(rig.runtime.actors.handle_event, raw, rig.runtime.app.proofs))
        letter = rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="the raw event dead-lettered")[0]
        assert letter.kind == "invalid_event" and "data.kyc" in letter.reason, "refused for its unsealed documents"
        record = rig.runtime.app.store.load(ref)
        assert record is not None and record.kyc is None, "the unsealed documents were not taken"

        with start_server(rig.exchange) as server:
            env = {
                "REDIS_URL": rig.settings.redis_url,
                "PROVISIONER_REDIS_PREFIX": rig.settings.key_prefix,
                "PROVISIONER_STATE_DIR": rig.settings.state_dir or "",
                "KUCOIN_BROKER_BASE_URL": server.url,
                "KUCOIN_SPOT_BASE_URL": server.url,
            }
            runner = CliRunner()
            shown = [
                runner.invoke(main, ["dlq", "show", letter.message_id, *flag], env=env) for flag in ([], ["--json"])
            ]
            listed = runner.invoke(main, ["dlq", "list"], env=env)
        for result in (*shown, listed):
            assert result.exit_code == 0, result.output
        assert ref in shown[0].output, "the dead letter names the customer by its reference"

        prefixes = [f"{key_prefix}:", f"{key_prefix}-dramatiq:"]
        stored = rig.runtime.dead_letters().list()
        letters = json.dumps([d.summary() | {"tb": d.traceback} for d in stored])
        where = [
            ("logs", logs.getvalue()),
            ("dead letters", letters),
            ("dlq show", shown[0].output),
            ("dlq show --json", shown[1].output),
            ("dlq list", listed.output),
        ]
        assert hits(PERSONAL, where) == []
        # the stored message keeps the customer id (as the event store does: a replay needs it), not the documents
        assert hits(PERSONAL[:-1], [("dead letter args", json.dumps([d.args for d in stored]))]) == []
        assert hits(PERSONAL[:-1], redis_values(rig.runtime.app.redis, prefixes)) == []
        assert "dramatiq" in logs.getvalue() and "Failed to process message" in logs.getvalue(), "dramatiq's lines"
        assert ref in logs.getvalue(), "the logs did capture the run, naming the customer by its reference"


def test_redaction_blanks_personal_fields_formatted_into_a_message() -> None:
    """A dict (or JSON) formatted into the text of a stdlib log line has its personal fields blanked."""
    body = {"data": {"kyc": DOCUMENTS}, "customer_id": CUSTOMER_ID}
    record = logging.LogRecord("dramatiq.worker", logging.ERROR, "x", 1, "Failed %s", (repr(body),), None)
    as_json = json.dumps({"customer_id": CUSTOMER_ID, "kyc": DOCUMENTS})
    for text in (record.getMessage(), as_json):
        out = redact_secrets(None, "error", {"event": text})
        assert hits(PERSONAL, [("event", out["event"])]) == []


def test_redaction_keeps_what_names_no_personal_field() -> None:
    """The text scan blanks values of personal or secret names only: refs, reasons and amounts stay readable."""
    text = "customer_ref=c3b0ffd4e9 reason: 'funding cap' {'amount': '250', 'customer_id': 'a@b.org'}"
    out = redact_secrets(None, "info", {"event": text})["event"]
    assert out == "customer_ref=c3b0ffd4e9 reason: 'funding cap' {'amount': '250', 'customer_id': [redacted]}"


def test_dlq_show_hides_documents_a_dead_letter_stored_before_the_upgrade() -> None:
    """A dead letter stored in the clear by an older version is shown without its documents or upstream id."""
    from worker.runtime.deadletters import shown_args

    event = {"id": "e1", "customer_id": CUSTOMER_ID, "data": {"kyc": DOCUMENTS, "permissions": ["spot"]}}
    shown = shown_args([event], lambda customer_id: "ref-of-" + customer_id[:3])
    assert shown == [{"id": "e1", "customer_ref": "ref-of-zel", "data": {"kyc": "[redacted]", "permissions": ["spot"]}}]
    sealed = {"id": "e2", "customer_id": "x", "data": {"kyc": {"$envelope": {"k": "v"}}}}
    assert shown_args([sealed, "ref"], str)[0]["data"] == sealed["data"], "sealed documents are shown as stored"
