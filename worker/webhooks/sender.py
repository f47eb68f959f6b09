"""Sending one webhook request: sign, POST, and turn whatever happens into an ``Answer`` (errors classified here,
at the edge where the client meets the wire; the decision is ``handlers.delivery``'s).

The client is httpx with a connection pool shared by the dispatcher's threads, the environment's proxy variables
ignored (like the exchange client) and redirects not followed. A success is taken at its status, its body never
read; a failure's body is read up to 2 KiB, for the read time-out at most, and only an excerpt (secret-looking text
blanked) is kept as its description. (A receiver dripping its headers a byte at a time can still hold a thread past
its lease: httpx has no total time-out; the lease fences the late report.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx

from handlers.delivery import Answer, retry_after_ms
from worker.logs import _scrub
from worker.webhooks.signing import Signer

__all__ = ["Sender", "http_client"]

USER_AGENT = "kucoin-nd-provisioner-webhooks/1"
_EXCERPT = 200


def http_client(*, timeout_s: float, connections: int, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The dispatcher's HTTP client: ``connections`` pooled connections, ``timeout_s`` for each phase."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
        trust_env=False,
        transport=transport,
        headers={"user-agent": USER_AGENT},
    )


class Sender:
    """POSTs signed event bodies to one URL."""

    def __init__(self, client: httpx.Client, url: str, signer: Signer) -> None:
        self._client = client
        self._url = url
        self._signer = signer
        self._excerpt_s = client.timeout.read or 10.0

    def __repr__(self) -> str:
        return f"Sender(url={self._url!r})"

    def send(self, event_id: str, body: str, now_ms: int) -> Answer:
        """Sign ``body`` for ``event_id`` at ``now_ms`` and POST it. Never raises for what the network or the
        receiver does: a transport failure is ``Answer(None, <what>)``, any response its status (with Retry-After)."""
        headers = self._signer.headers(event_id, body, datetime.fromtimestamp(now_ms / 1000, tz=UTC))
        try:
            with self._client.stream("POST", self._url, content=body.encode("utf-8"), headers=headers) as response:
                # a success is its status: its body is never read (a receiver dripping it would hold this thread)
                ok = 200 <= response.status_code < 300
                excerpt = "" if ok else _read_excerpt(response, within_s=self._excerpt_s)
        except httpx.TimeoutException as exc:
            return Answer(None, f"timeout ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return Answer(None, f"{type(exc).__name__}: {_scrub(str(exc))[:_EXCERPT]}")
        status = response.status_code
        if 200 <= status < 300:
            return Answer(status)
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        return Answer(status, error, retry_after_ms(response.headers.get("retry-after"), now_ms))


def _read_excerpt(response: httpx.Response, *, within_s: float) -> str:
    """Up to 2 KiB of the body, read for ``within_s`` at most (httpx's time-out is per read: a body dripped a
    byte at a time never trips it), as a short one-line excerpt with secret-looking text blanked."""
    chunks, size = [], 0
    deadline = time.monotonic() + within_s
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= 2048 or time.monotonic() >= deadline:
            break
    text = b"".join(chunks)[:2048].decode("utf-8", "replace")
    return str(_scrub(" ".join(text.split())))[:_EXCERPT]
