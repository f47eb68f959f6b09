"""Problem responses (RFC 9457, ``application/problem+json``): every error the API answers is one of these.

``ProblemError`` is raised anywhere in a request and turned into its response by the app's one handler, so a
route never builds an error response by hand. The ``type`` of each problem is a stable URI naming what went wrong
(documented in ``docs/integration.md``); ``field`` and ``reason`` name the offending field of a refused event.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PROBLEM_JSON", "Problem", "ProblemBoundary", "ProblemError", "problem_response"]

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://kucoin-nd-provisioner/problems/"


class Problem(BaseModel):
    """The body of every error response (RFC 9457); ``field``/``reason``/``event_id`` for refused events."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int
    detail: str | None = None
    field: str | None = None
    reason: str | None = None
    event_id: str | None = None


class ProblemError(Exception):
    """Answer the request with a problem. ``kind`` is the last segment of its ``type`` URI."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: str | None,
    ) -> None:
        super().__init__(f"{status} {kind}")
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(error: ProblemError) -> Response:
    body: dict[str, Any] = {"type": _TYPE_BASE + error.kind, "title": error.title, "status": error.status}
    if error.detail is not None:
        body["detail"] = error.detail
    body.update({k: v for k, v in error.extensions.items() if v is not None})
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


_log = structlog.get_logger("api")


class ProblemBoundary:
    """ASGI middleware: an exception no handler answered (a bug) becomes a 500 problem, logged once (the redaction
    processor scrubs it), never a stack trace to the caller and never a dropped connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            _log.error("unexpected error", error=type(exc).__name__, exc_info=exc)
            if started:
                raise  # half an answer is out: only closing the connection is left (the server does)
            await problem_response(ProblemError(500, "internal-error", "Internal error"))(scope, receive, send)
