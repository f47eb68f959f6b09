"""The adapter-neutral request and outcome of one exchange call.

``SimRequest`` is what both adapters (in-process httpx transport, loopback HTTP server) hand to
``Exchange.handle``; ``SimOutcome`` is what they get back: the response plus a ``Directive`` telling the adapter
how to misbehave when a fault was injected after the change was committed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Directive", "SimOutcome", "SimRequest", "json_body"]


@dataclass(frozen=True)
class SimRequest:
    """One HTTP request as the exchange sees it.

    ``path`` is the decoded path without query; ``query`` the raw (URL-encoded) query string without ``?``;
    ``headers`` are stored with lower-case names (use ``header()``); ``client_ip`` is the peer address.
    """

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_ip: str = "127.0.0.1"

    @classmethod
    def create(
        cls,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        client_ip: str = "127.0.0.1",
    ) -> SimRequest:
        """Build a request, normalising the method to upper case and header names to lower case."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        lowered: dict[str, str] = {}
        for name, value in items:
            lowered.setdefault(name.lower(), value)
        return cls(method.upper(), path, query=query, headers=lowered, body=body, client_ip=client_ip)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Directive:
    """How the adapter must deliver the response.

    ``none``: send it. ``drop``: the change is committed; lose the response (server: close the socket;
    transport: raise ``httpx.ReadTimeout`` when ``drop_as == "timeout"``, else ``httpx.RemoteProtocolError``).
    ``slow``: the change is committed; deliver the response after ``delay_ms`` (transport: raise
    ``httpx.ReadTimeout`` if that exceeds the client's read time-out).
    """

    kind: Literal["none", "drop", "slow"] = "none"
    delay_ms: int = 0
    drop_as: Literal["timeout", "protocol"] = "protocol"


NO_FAULT = Directive()


@dataclass(frozen=True)
class SimOutcome:
    """A complete HTTP response plus the fault directive for the adapter."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    directive: Directive = NO_FAULT

    def json(self) -> Any:
        """The body parsed as JSON (for tests and the admin API)."""
        return json.loads(self.body)


def json_body(payload: Any) -> bytes:
    """Compact JSON, as KuCoin sends it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
