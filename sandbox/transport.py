"""``SandboxTransport``: the exchange as an in-process ``httpx`` transport (fast; no sockets).

Faults become what a real client would see. ``drop`` (committed, response lost) raises ``httpx.ReadTimeout``
or ``httpx.RemoteProtocolError``, chosen by the seeded coin ``faults.drop_timeout_share``. ``slow`` (committed)
compares ``faults.slow_ms`` with the client's read time-out (``request.extensions["timeout"]["read"]``): beyond
it the transport raises ``httpx.ReadTimeout``, otherwise it answers. The real sleep in both cases is capped at
``faults.inprocess_max_sleep_ms`` (default 5 ms; null = sleep for real) so tests stay fast. Latency is slept
for real by the exchange before processing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from sandbox.wire import SimRequest

if TYPE_CHECKING:
    from sandbox.app import Exchange

__all__ = ["SandboxTransport"]


class SandboxTransport(httpx.BaseTransport):
    """Serves ``httpx.Client(transport=exchange.transport())`` from ``exchange`` in the calling thread."""

    def __init__(
        self, exchange: Exchange, *, client_ip: str = "127.0.0.1", sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._exchange = exchange
        self._client_ip = client_ip
        self._sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        sim = SimRequest.create(
            request.method,
            request.url.path,
            query=request.url.query.decode("ascii", errors="replace"),
            headers=request.headers.multi_items(),
            body=body,
            client_ip=self._client_ip,
        )
        outcome = self._exchange.handle(sim)
        directive = outcome.directive
        if directive.kind == "drop":
            if directive.drop_as == "timeout":
                self._nap(_read_timeout(request) or 0.0)
                raise httpx.ReadTimeout("sandbox: response dropped after commit", request=request)
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        if directive.kind == "slow":
            delay = directive.delay_ms / 1000
            read_timeout = _read_timeout(request)
            if read_timeout is not None and delay > read_timeout:
                self._nap(read_timeout)
                raise httpx.ReadTimeout("sandbox: slow response exceeded the read timeout", request=request)
            self._nap(delay)
        return httpx.Response(outcome.status, headers=list(outcome.headers), content=outcome.body, request=request)

    def _nap(self, seconds: float) -> None:
        cap_ms = self._exchange.config.faults.inprocess_max_sleep_ms
        if cap_ms is not None:
            seconds = min(seconds, cap_ms / 1000)
        if seconds > 0:
            self._sleep(seconds)


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout", {})
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if isinstance(value, int | float) else None
