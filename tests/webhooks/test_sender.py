"""The sender's edge: a receiver that answers and then drips its body must not hold a delivery thread (a thread held
past its lease is one fewer for every other customer's lane; its late report is fenced, but the thread is gone)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx

from tests.webhooks.conftest import SECRET
from worker.webhooks.sender import Sender, http_client
from worker.webhooks.signing import Signer

TIMEOUT_S = 0.5


def _dripping(status: int, *, chunks: int, every_s: float) -> httpx.MockTransport:
    """A receiver that answers ``status`` at once, then sends its body a byte every ``every_s`` (each byte within
    the read time-out, so httpx's per-read time-out never fires)."""

    def body() -> Iterator[bytes]:
        for _ in range(chunks):
            time.sleep(every_s)
            yield b"x"

    return httpx.MockTransport(lambda request: httpx.Response(status, content=body()))


def _sender(transport: httpx.MockTransport) -> Sender:
    client = http_client(timeout_s=TIMEOUT_S, connections=1, transport=transport)
    return Sender(client, "http://127.0.0.1:9/hooks", Signer.parse(SECRET))


def test_a_2xx_is_taken_at_its_status_whatever_its_body_does() -> None:
    sender = _sender(_dripping(200, chunks=60, every_s=0.05))  # 3 s of body
    started = time.monotonic()
    answer = sender.send("evt-1", "{}", int(time.time() * 1000))
    assert answer.status == 200 and not answer.error
    assert time.monotonic() - started < 1.0, "the body of a success is never needed"


def test_a_failures_excerpt_is_read_for_at_most_the_time_out() -> None:
    sender = _sender(_dripping(503, chunks=60, every_s=0.05))
    started = time.monotonic()
    answer = sender.send("evt-1", "{}", int(time.time() * 1000))
    assert answer.status == 503 and answer.error is not None and answer.error.startswith("HTTP 503: x")
    assert time.monotonic() - started < TIMEOUT_S + 0.5, "the excerpt is read for the time-out at most"
