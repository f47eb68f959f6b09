"""With webhooks on: the issued keys' secrets and passphrases, the webhook secret and the upstream's private key
never appear in plaintext in logs (at DEBUG), metrics, any Redis value, a delivery dead letter or a webhook body;
the credentials leave only as a JWE; what a receiver answers is stored only scrubbed."""

from __future__ import annotations

import io
import json

import pytest
from prometheus_client import generate_latest

from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig
from tests.security.scan import hits, redis_values
from tests.webhooks.conftest import SECRET, FakeClock, Hooks
from tests.webhooks.keys import key_pair, open_jwe
from tests.webhooks.receiver import Receiver, Reply
from tests.webhooks.test_dispatcher import run_until_quiet
from worker.logs import configure_logging
from worker.settings import Settings
from worker.webhooks.signing import Signer
from worker.webhooks.store import DeliveryStore


def test_no_secret_leaks_with_webhooks_on(redis_url: str, key_prefix: str) -> None:
    logs = io.StringIO()
    private, public = key_pair("ec")
    refused_once: set[str] = set()

    def plan(event: dict) -> Reply:  # each event is refused once (a retry, logged), then taken
        if event["id"] not in refused_once:
            refused_once.add(event["id"])
            return Reply(503)
        return Reply(204)

    with Receiver(SECRET, plan) as receiver:
        settings = {
            "PROVISIONER_WEBHOOK_URL": receiver.url,
            "PROVISIONER_WEBHOOK_SECRET": SECRET,
            "PROVISIONER_DELIVERY_JWK": json.dumps(public),
            "PROVISIONER_WEBHOOK_MIN_BACKOFF_MS": "50",
            "PROVISIONER_WEBHOOK_MAX_BACKOFF_MS": "100",
        }
        with WorkerRig(redis_url, key_prefix, **settings) as rig:
            configure_logging(fmt="json", level="DEBUG", stream=logs, secrets=rig.settings.log_secrets())
            ev = events_for("leak-hooks")
            rig.publisher.publish(ev["created"])
            rig.publisher.publish(ev["kyc"])
            rig.wait_for(lambda: rig.live_keys(), what="the first key")
            rig.publisher.publish(ev["rotate"])
            rig.wait_for(
                lambda: [r for r in receiver.delivered() if r.event["type"] == "api_key.issued"][1:],
                timeout=30,
                what="both keys delivered by webhook",
            )
            issued = [v for k in rig.exchange.state.api_keys.values() for v in (k.secret, k.passphrase)]
            secrets = [*issued, SECRET, SECRET.removeprefix("whsec_"), private["d"]]
            prefixes = [f"{key_prefix}:", f"{key_prefix}-dramatiq:"]
            assert hits(secrets, redis_values(rig.runtime.app.redis, prefixes)) == []
            assert hits(secrets, [("metrics", generate_latest(rig.registry).decode())]) == []
    assert len(issued) >= 4
    assert hits(secrets, [("logs", logs.getvalue())]) == []
    assert "webhook attempt" in logs.getvalue(), "the logs did capture the deliveries"
    bodies = [r.body for r in receiver.all()]
    assert hits(secrets, [("webhook bodies", "\n".join(bodies))]) == []
    opened = {
        open_jwe(r.event["credentials"]["jwe"], private)[1]["secret"]
        for r in receiver.delivered()
        if r.event["type"] == "api_key.issued"
    }
    assert opened and opened <= set(issued), "the credentials were there, encrypted"


@pytest.mark.webhook_settings(PROVISIONER_WEBHOOK_RETRY_HORIZON_SECONDS="600")
def test_what_a_receiver_answers_is_stored_scrubbed(hooks: Hooks) -> None:
    """A receiver that echoes our secret (or a token) in its error body: the dead letter keeps an excerpt with
    them blanked, and no Redis value holds them."""
    configure_logging(fmt="json", level="INFO", stream=io.StringIO(), secrets=hooks.settings.log_secrets())
    token = "gAAAAABlongfernettokenvalue1234567890"
    hooks.receiver.plan = lambda event: Reply(500, body=f"bad signature for secret {SECRET} token {token}")
    hooks.emit("c-echo")
    clock = FakeClock()
    run_until_quiet(hooks, clock, hooks.dispatcher(clock=clock))
    (letter,) = DeliveryStore(hooks.redis, hooks.keys).dead_letters()
    assert letter.last_error.startswith("HTTP 500: bad signature")
    assert SECRET not in letter.last_error and token not in letter.last_error
    assert hits([SECRET, token], redis_values(hooks.redis, [f"{hooks.keys.prefix}:"])) == []


def test_reprs_and_errors_never_show_the_webhook_secret() -> None:
    assert SECRET not in repr(Signer.parse(SECRET))
    settings, _ = Settings.from_env(
        {"PROVISIONER_WEBHOOK_URL": "http://127.0.0.1:1/x", "PROVISIONER_WEBHOOK_SECRET": SECRET}
    )
    assert SECRET not in repr(settings) and SECRET in settings.log_secrets()
    try:
        Settings.from_env({"PROVISIONER_WEBHOOK_SECRET": "whsec_" + "A" * 8 + "!"})
    except Exception as exc:
        assert "A" * 8 not in str(exc)
    else:
        raise AssertionError("a malformed secret must be refused")
