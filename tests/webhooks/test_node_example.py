"""``examples/node/receiver.mjs`` — npm's ``standardwebhooks`` and ``jose``, nothing of ours — receives what the
dispatcher sends: it verifies every signature and decrypts the credentials of ``api_key.issued`` with the private
half of each key type. Runs whenever ``node`` is on PATH (``npm ci`` once, from the committed lock file)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.core.harness import Rig, events_for, settings_for
from tests.node import NODE, NODE_MARKS
from tests.webhooks.conftest import SECRET
from tests.webhooks.keys import key_pair
from worker.webhooks.runtime import build_dispatcher

pytestmark = NODE_MARKS


class NodeReceiver:
    def __init__(self, example: Path, private_jwk: dict[str, Any]) -> None:
        env = {**os.environ, "WEBHOOK_SECRET": SECRET, "DELIVERY_PRIVATE_JWK": json.dumps(private_jwk), "PORT": "0"}
        self.proc = subprocess.Popen(
            [str(NODE), "receiver.mjs"], cwd=example, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first:
            raise AssertionError(
                f"the node receiver did not start: {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.url = f"http://127.0.0.1:{json.loads(first)['listening']}/webhooks"

    def stop(self) -> list[dict[str, Any]]:
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0, err
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(params=["ec", "rsa"])
def keys(request: pytest.FixtureRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    return key_pair(request.param)


def test_node_verifies_and_decrypts_what_the_dispatcher_sends(
    node_example: Path, keys: tuple[dict[str, Any], dict[str, Any]], redis_url: str, key_prefix: str
) -> None:
    private, public = keys
    node = NodeReceiver(node_example, private)
    rig = Rig(redis_url, key_prefix, PROVISIONER_DELIVERY_JWK=json.dumps(public))
    try:
        ev = events_for("node-upstream")
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref)
        rig.publish(ev["rotate"])
        rig.settle(ref)
        settings = settings_for(
            redis_url,
            key_prefix,
            PROVISIONER_WEBHOOK_URL=node.url,
            PROVISIONER_WEBHOOK_SECRET=SECRET,
            PROVISIONER_DELIVERY_JWK=json.dumps(public),
        )
        dispatcher = build_dispatcher(settings, rig.app.redis)
        assert dispatcher is not None
        dispatcher.drain()
        dispatcher.drain()  # a second pass sends nothing again
        issued_keys = {k.api_key: k for k in rig.exchange.state.api_keys.values()}
        stream = [e["id"] for e in rig.outbound()]
    finally:
        lines = node.stop()
        rig.close()

    assert all(line["verified"] for line in lines), lines
    assert not any(line.get("duplicate") or line.get("gap") or line.get("error") for line in lines)
    assert [line["id"] for line in lines] == stream, "each event once, in order (one customer)"
    assert [line["type"] for line in lines].count("api_key.revoked") == 1
    decrypted = [line["credentials"] for line in lines if line["type"] == "api_key.issued"]
    assert len(decrypted) == 2, "the first key and its rotation"
    for creds in decrypted:
        issued = issued_keys[creds["api_key"]]
        assert creds["secret_sha256"] == hashlib.sha256(issued.secret.encode()).hexdigest()
        assert creds["passphrase_sha256"] == hashlib.sha256(issued.passphrase.encode()).hexdigest()
    sequences = [line["sequence"] for line in lines]
    assert sequences == list(range(1, len(lines) + 1)), "one customer: in sequence order"
