"""Problem responses (RFC 9457, ``application/problem+json``): every error the API answers is one of these.

``ProblemError`` is raised anywhere in a request and turned into its response by the app's one handler, so a
route never builds an error response by hand. The ``type`` of each problem is a stable URI naming what went wrong
(documented in ``docs/integration.md``); ``field`` and ``reason`` name the offending field of a refused event.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

__all__ = ["PROBLEM_JSON", "Problem", "ProblemError", "problem_response"]

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
