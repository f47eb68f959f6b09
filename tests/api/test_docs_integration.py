"""docs/integration.md tells a Java/Node team the truth: its signing recipe verifies, its status table lists every
answer the OpenAPI document declares, its customer-view example has the view's shape, its Node walkthrough quotes
the example publisher as it is, and its Python example publishes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from pathlib import Path

import pytest
import redis

from api.signing import SignatureVerifier
from handlers.customer_view import CustomerView
from tests.api.live import SECRET, now_iso
from tests.api.test_durability import held

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "integration.md").read_text()


def test_the_documented_recipe_signs_what_the_api_verifies() -> None:
    """The recipe as the Java and Node snippets write it: HMAC-SHA256 over "id.timestamp." then the body bytes."""
    body = b'{"id":"e1"}'
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    msg_id, ts = "msg_1", str(int(time.time()))
    signature = (
        "v1," + base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    )
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": signature}
    assert SignatureVerifier.parse(SECRET).verify(body, headers)
    assert 'update((id + "." + ts + ".")' in DOC and "update(`${id}.${ts}.`).update(body)" in DOC


def test_every_declared_answer_is_documented() -> None:
    document = json.loads((ROOT / "schema" / "openapi.json").read_text())
    declared = set(document["paths"]["/v1/events"]["post"]["responses"])
    section = DOC.split("### `POST /v1/events`", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"^\| \*\*(\d{3})\*\* \|", section, flags=re.MULTILINE))
    assert documented == declared


def test_the_customer_view_example_has_the_views_shape() -> None:
    example = DOC.split("### `GET /v1/customers/{customer_id}`", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    CustomerView.model_validate_json(example.replace('"reason": "…"', '"reason": "x"'))


def _section(heading: str) -> str:
    return DOC.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def test_the_node_walkthrough_quotes_the_example_publisher() -> None:
    """Every code line of the walkthrough's excerpt is a line of ``examples/node/publisher.mjs`` (comments aside;
    the excerpt is flat code where the publisher has a class, so ``this.`` is dropped, and reads its secret from
    the environment directly)."""
    source = (ROOT / "examples/node/publisher.mjs").read_text().replace("this.", "")
    publisher = {line.split(" // ")[0].strip() for line in source.splitlines()}
    excerpt = _section("### Publishing from Node, step by step").split("```js\n", 1)[1].split("```", 1)[0]
    code = [line.split(" // ")[0].strip() for line in excerpt.splitlines()]
    quoted = [line for line in code if line and not line.startswith(("//", "}")) and "process.env" not in line]
    assert len(quoted) >= 8
    assert [line for line in quoted if line not in publisher] == []


@pytest.mark.redis
def test_the_python_example_publishes(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example of "Publishing from Python" runs as written (with today's date) and hands one event off."""
    example = _section("## Publishing from Python: `worker.publish`").split("```python\n", 1)[1].split("```", 1)[0]
    for name in [n for n in __import__("os").environ if n.startswith(("PROVISIONER_", "KUCOIN_", "REDIS_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("PROVISIONER_REDIS_PREFIX", key_prefix)
    exec(compile(example.replace("2026-12-02T10:00:00Z", now_iso()), "integration.md", "exec"), {})
    assert capsys.readouterr().out == "published evt-1 events\n"
    counts = held(redis.Redis.from_url(redis_url, decode_responses=True), key_prefix)
    assert counts["handoff"]["evt-1"] == counts["queued"]["evt-1"] == 1
