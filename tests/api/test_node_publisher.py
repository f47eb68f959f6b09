"""``examples/node/publisher.mjs`` — npm's ``standardwebhooks`` and Node's fetch, nothing of ours — publishes to a
live ``provisioner api`` over loopback: single events and batches get their answers printed (a refusal with its
field and reason), and a request retried after a 503 or a lost answer leaves each event queued exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.api.live import PRODUCTION_SECRET, ApiProcess, approval, event
from tests.api.test_durability import held
from tests.conftest import TEST_REDIS_URL, delete_prefix
from tests.node import NODE, NODE_MARKS

pytestmark = [pytest.mark.redis, *NODE_MARKS]
Held = Callable[[str, list[str]], dict[str, int]]


@dataclass
class Attempt:
    webhook_id: str
    at: float
    action: str


@dataclass
class FlakyProxy:
    """A loopback HTTP proxy in front of the API that spoils the first answers as planned, one action per request
    in arrival order, then passes everything through:

    - ``"503"``: answers 503 with ``Retry-After: 1`` without forwarding (the API never saw the request);
    - ``"413-html"``: answers 413 with an HTML body without forwarding (as a load balancer in between might);
    - ``"503-after"``: forwards, throws the API's answer away, answers 503 with ``Retry-After: 1``;
    - ``"drop-after"``: forwards, then closes the connection without an answer (a network error)."""

    target: str
    plan: list[str] = field(default_factory=list)
    prefix: str = ""
    """A path prefix the proxy serves the API under (a gateway's), taken off before forwarding."""
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                action = proxy.plan.pop(0) if proxy.plan else "pass"
                proxy.attempts.append(Attempt(self.headers["webhook-id"], time.monotonic(), action))
                if action == "503":
                    return self._answer(503, b"", {"Retry-After": "1"})
                if action == "413-html":
                    return self._answer(413, b"<html>Request Entity Too Large</html>", {"content-type": "text/html"})
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                if not self.path.startswith(proxy.prefix):
                    return self._answer(404, b"", {})
                path = self.path.removeprefix(proxy.prefix)
                answer = httpx.post(f"{proxy.target}{path}", content=body, headers=headers, timeout=10)
                if action == "503-after":
                    return self._answer(503, b"", {"Retry-After": "1"})
                if action == "drop-after":
                    self.close_connection = True
                    return None
                return self._answer(
                    answer.status_code, answer.content, {"content-type": answer.headers["content-type"]}
                )

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in {**headers, "content-length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Run:
    code: int
    results: list[dict[str, Any]]
    retries: list[dict[str, Any]]


def publish(
    example: Path, tmp_path: Path, url: str, events: list[Any], *, batch: bool = False, secret: str = PRODUCTION_SECRET
) -> Run:
    """Runs ``node publisher.mjs [--batch] events.jsonl`` against ``url`` (a ``str`` event is written as its own
    line, unchanged); its printed lines, split."""
    source = tmp_path / "events.jsonl"
    source.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    env = {**os.environ, "API_URL": url, "API_SECRET": secret, "MAX_ATTEMPTS": "4"}
    argv = [str(NODE), "publisher.mjs", *(["--batch"] if batch else []), str(source)]
    done = subprocess.run(argv, cwd=example, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert not done.stderr, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return Run(done.returncode, [x for x in lines if "retrying" not in x], [x for x in lines if "retrying" in x])


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ApiProcess, str]]:
    """One ``provisioner api`` for the module (it takes seconds to start) under its own key prefix, deleted after;
    each test publishes its own customers' events."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    try:
        with ApiProcess(TEST_REDIS_URL, prefix) as process:
            yield process, prefix
    finally:
        client = redis.Redis.from_url(TEST_REDIS_URL)
        delete_prefix(client, prefix)
        client.close()


@pytest.fixture
def api(served: tuple[ApiProcess, str]) -> ApiProcess:
    return served[0]


@pytest.fixture
def queued(served: tuple[ApiProcess, str]) -> Iterator[Held]:
    """``queued(kind, customers)``: per event id of these customers, how many admission entries (``"admitted"``),
    hand-off records (``"handoff"``) or queued messages (``"queued"``) Redis holds."""
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)

    def count(kind: str, customers: list[str]) -> dict[str, int]:
        ours = tuple(f"{customer}-" for customer in customers)
        return {eid: n for eid, n in held(client, served[1])[kind].items() if eid.startswith(ours)}

    yield count
    client.close()


def bad_amount(customer: str) -> dict[str, Any]:
    refused = approval(customer)
    refused["data"]["funding"] = [{"currency": "USDT", "amount": 250}]
    return refused


def test_single_events_accepted_duplicate_and_refused_with_field_and_reason(
    node_example: Path, tmp_path: Path, api: ApiProcess, queued: Held
) -> None:
    created = event("customer.created", "node-1")
    run = publish(node_example, tmp_path, api.url, [created, "{not json", created, bad_amount("node-1")])
    assert run.code == 1, "a refusal is final: exit 1"
    assert run.retries == []
    unreadable, first, again, refused = run.results
    assert (unreadable["line"], unreadable["status"]) == (2, "unreadable"), "reported, not sent"
    assert first == {"id": "node-1-created", "http": 202, "status": "accepted", "attempts": 1}
    assert again == {"id": "node-1-created", "http": 200, "status": "duplicate", "attempts": 1}
    assert (refused["id"], refused["http"], refused["status"]) == ("node-1-kyc_approved", 422, "refused")
    assert refused["field"] == "data.funding.0.amount" and "not a JSON number" in refused["reason"]
    assert queued("queued", ["node-1"]) == {"node-1-created": 1}


def test_a_wrong_secret_is_a_401_printed_and_not_retried(node_example: Path, tmp_path: Path, api: ApiProcess) -> None:
    other = "whsec_" + "b3RoZXItc2VjcmV0LXRoYXQtc2lnbnMtbm90aGluZw=="
    run = publish(node_example, tmp_path, api.url, [event("customer.created", "node-2")], secret=other)
    assert run.code == 1 and run.retries == []
    assert run.results == [
        {
            "id": "node-2-created",
            "http": 401,
            "status": "rejected",
            "detail": "the request is not signed as agreed",
            "attempts": 1,
        }
    ]


def test_a_batch_prints_each_events_result_in_input_order(
    node_example: Path, tmp_path: Path, api: ApiProcess, queued: Held
) -> None:
    created = event("customer.created", "node-3")
    assert publish(node_example, tmp_path, api.url, [created]).code == 0
    run = publish(node_example, tmp_path, api.url, [created, approval("node-3"), bad_amount("node-4")], batch=True)
    assert run.code == 1
    assert [(r["id"], r["http"], r["status"]) for r in run.results] == [
        ("node-3-created", 200, "duplicate"),
        ("node-3-kyc_approved", 200, "accepted"),
        ("node-4-kyc_approved", 200, "refused"),
    ]
    assert run.results[2]["field"] == "data.funding.0.amount"
    assert queued("queued", ["node-3", "node-4"]) == {"node-3-created": 1, "node-3-kyc_approved": 1}


def test_retries_after_a_503_or_a_lost_answer_queue_each_event_once(
    node_example: Path, tmp_path: Path, api: ApiProcess, queued: Held
) -> None:
    proxy = FlakyProxy(api.url, ["503", "pass", "503-after", "pass", "drop-after", "pass", "503-after"])
    try:
        events = [event("customer.created", f"node-{n}") for n in (5, 6, 7)]
        singles = publish(node_example, tmp_path, proxy.url, events)
        batch = publish(node_example, tmp_path, proxy.url, [*events, approval("node-5")], batch=True)
    finally:
        proxy.close()

    assert singles.code == 0 and batch.code == 0
    assert [(r["id"], r["status"], r["attempts"]) for r in singles.results] == [
        ("node-5-created", "accepted", 2),  # the first attempt never reached the API
        ("node-6-created", "duplicate", 2),  # the first attempt was stored, its answer replaced by a 503
        ("node-7-created", "duplicate", 2),  # the first attempt was stored, its connection cut
    ]
    assert [(r["id"], r["status"], r["attempts"]) for r in batch.results] == [
        ("node-5-created", "duplicate", 2),
        ("node-6-created", "duplicate", 2),
        ("node-7-created", "duplicate", 2),
        ("node-5-kyc_approved", "duplicate", 2),
    ], "the batch was stored by its first attempt; its retry finds every event held"
    assert [r["cause"] for r in singles.retries + batch.retries] == [
        "HTTP 503",
        "HTTP 503",
        "UND_ERR_SOCKET",
        "HTTP 503",
    ]
    once = {"node-5-created": 1, "node-6-created": 1, "node-7-created": 1, "node-5-kyc_approved": 1}
    for kind in ("admitted", "handoff", "queued"):
        assert queued(kind, ["node-5", "node-6", "node-7"]) == once, f"each event {kind} exactly once"

    by_request: dict[str, list[Attempt]] = {}
    for attempt in proxy.attempts:
        by_request.setdefault(attempt.webhook_id, []).append(attempt)
    assert [len(a) for a in by_request.values()] == [2, 2, 2, 2], "each retry repeats its request's webhook-id"
    for first, retry in by_request.values():
        if first.action in ("503", "503-after"):
            assert retry.at - first.at >= 0.95, "Retry-After: 1 was honoured"


def test_a_4xx_that_is_not_json_is_final_too(node_example: Path, tmp_path: Path, api: ApiProcess) -> None:
    proxy = FlakyProxy(api.url, ["413-html"])
    try:
        run = publish(node_example, tmp_path, proxy.url, [event("customer.created", "node-8")])
    finally:
        proxy.close()
    assert (run.code, run.retries, len(proxy.attempts)) == (1, [], 1)
    assert run.results == [{"id": "node-8-created", "http": 413, "status": "rejected", "detail": None, "attempts": 1}]


def test_an_api_url_with_a_path_prefix_keeps_it(node_example: Path, tmp_path: Path, api: ApiProcess) -> None:
    proxy = FlakyProxy(api.url, prefix="/gw")
    try:
        run = publish(node_example, tmp_path, f"{proxy.url}/gw", [event("customer.created", "node-9")])
    finally:
        proxy.close()
    assert (run.code, run.results[0]["status"]) == (0, "accepted")
