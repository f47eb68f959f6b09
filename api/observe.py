"""The API's metrics and its one canonical log line per request: a plain ASGI middleware (no body is read here).

Metrics (their own registry, served on ``PROVISIONER_API_METRICS_HOST:PORT``):

=========================================  =========  ===================================================
``provisioner_api_requests_total``          counter    requests by ``route`` (the template, never a raw path),
                                                       ``method`` and ``status``
``provisioner_api_ingest_seconds``          histogram  ``POST /v1/events`` latency by ``kind`` (single, batch;
                                                       unparsed: answered before the body was judged)
``provisioner_api_events_total``            counter    admitted events by verdict ``status``
=========================================  =========  ===================================================

The log line carries method, route, status, duration, the ``webhook-id`` header and what the route put in
``request.state.log`` (event counts, verdicts, the failure's class). Never a body, a header value that signs,
or a secret: the route decides what goes in, and the redaction processor runs over it all the same.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ApiMetrics", "Observe"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = structlog.get_logger("api")
EVENTS_ROUTE = "/v1/events"


def _route(scope: Scope, status: int) -> str:
    """The route's template (``/v1/customers/{customer_id}``), never a raw path with an id in it."""
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return template.replace(":path}", "}")
    path = str(scope.get("path", ""))
    return path if path in _FIXED_PATHS and status != 404 else "unmatched"


_FIXED_PATHS = frozenset({"/openapi.json", "/healthz", "/readyz", EVENTS_ROUTE})


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "provisioner_api_requests",
            "API requests by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.ingest = Histogram(
            "provisioner_api_ingest_seconds",
            "Time to answer POST /v1/events (validation, sealing, the durable hand-off), by single or batch.",
            ["kind"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.events = Counter(
            "provisioner_api_events", "Events admitted over HTTP, by verdict.", ["status"], registry=registry
        )


class Observe:
    """Counts and logs every HTTP request once it is answered (or failed)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        method = str(scope.get("method", ""))
        route = _route(scope, status)
        self.metrics.requests.labels(route, method, str(status)).inc()
        state = scope.get("state") or {}
        details: dict[str, Any] = dict(state.get("log") or {})
        if route == EVENTS_ROUTE and method == "POST":
            self.metrics.ingest.labels(details.get("kind", "unparsed")).observe(elapsed)
        headers = dict(scope.get("headers") or ())
        webhook_id = headers.get(b"webhook-id", b"")[:64].decode("latin-1")
        _log.info(
            "request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            webhook_id=webhook_id or None,
            **details,
        )
