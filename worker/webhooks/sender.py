"""Sending one webhook request: sign, POST, and turn whatever happens into an ``Answer`` (errors classified here,
at the edge where the client meets the wire; the decision is ``handlers.delivery``'s).

The client is httpx with a connection pool shared by the dispatcher's threads, the environment's proxy variables
ignored (like the exchange client) and redirects not followed. The response body is read up to 2 KiB and only an
excerpt (secret-looking text blanked) is kept as the failure's description.
"""

from __future__ import annotations

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

    def __repr__(self) -> str:
        return f"Sender(url={self._url!r})"

    def send(self, event_id: str, body: str, now_ms: int) -> Answer:
        """Sign ``body`` for ``event_id`` at ``now_ms`` and POST it. Never raises for what the network or the
        receiver does: a transport failure is ``Answer(None, <what>)``, any response its status (with Retry-After)."""
        headers = self._signer.headers(event_id, body, datetime.fromtimestamp(now_ms / 1000, tz=UTC))
        try:
            with self._client.stream("POST", self._url, content=body.encode("utf-8"), headers=headers) as response:
                excerpt = _read_excerpt(response)
        except httpx.TimeoutException as exc:
            return Answer(None, f"timeout ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return Answer(None, f"{type(exc).__name__}: {_scrub(str(exc))[:_EXCERPT]}")
        status = response.status_code
        if 200 <= status < 300:
            return Answer(status)
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        return Answer(status, error, retry_after_ms(response.headers.get("retry-after"), now_ms))


def _read_excerpt(response: httpx.Response) -> str:
    """Up to 2 KiB of the body, as a short one-line excerpt with secret-looking text blanked."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= 2048:
            break
    text = b"".join(chunks)[:2048].decode("utf-8", "replace")
    return str(_scrub(" ".join(text.split())))[:_EXCERPT]
