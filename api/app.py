"""The HTTP app: routes, the signature check, and problem answers for every error.

=====================================  ========  ==================================================================
route                                  signed    answers
=====================================  ========  ==================================================================
``POST /v1/events``                    yes       202 / 200 / 409 / 422 (one event), 200 (batch), 400, 401, 413, 415,
                                                 503 + ``Retry-After`` (Redis unavailable: nothing applied)
``GET /v1/customers/{customer_id}``    yes       200 the customer's view, 404 unknown, 401, 503
``GET /healthz``                       no        200 while the process serves
``GET /readyz``                        no        200 when Redis answers and the naming is the deployment's, else 503
``GET /openapi.json``                  no        the OpenAPI document (``schema/openapi.json``)
=====================================  ========  ==================================================================

The body is read here, capped (``api.bodies``), and verified (``api.signing``) before anything looks at it;
the work that touches Redis runs in the thread pool, so a slow Redis cannot stall the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from api.bodies import MAX_BODY_BYTES, Batch, parse_body, too_large
from api.observe import ApiMetrics, Observe
from api.openapi import document
from api.problems import ProblemBoundary, ProblemError, problem_response
from api.request_ids import RequestIds, request_digest
from api.signing import SignatureVerifier
from api.statuses import batch_body, single_answer
from handlers.customer_view import CustomerView
from worker.runtime.admission import Admission
from worker.store.epoch import NamingMismatch

__all__ = ["ApiServices", "create_app"]

RETRY_AFTER_S = 5
"""What a 503 asks the caller to wait before trying again."""
_JSON_TYPES = ("application/json",)
_CUSTOMER_ID = re.compile(r"[A-Za-z0-9._:@+/=-]{1,64}")
"""The contract's customer id (``handlers.events.CustomerId``): no other id can have been accepted."""
_log = structlog.get_logger("api")


@dataclass
class ApiServices:
    """What the routes need; built by ``api.bootstrap`` (or a test) from concrete adapters."""

    admission: Admission
    customer: Callable[[str], CustomerView | None]
    ping: Callable[[], object]
    verifier: SignatureVerifier
    metrics: ApiMetrics
    request_ids: RequestIds
    """Binds each verified request id to the one request it signed (``api.request_ids``)."""
    version: str = "0.1.0"


def _unavailable() -> ProblemError:
    return ProblemError(
        503,
        "unavailable",
        "Temporarily unavailable",
        "the event store is unavailable; nothing of this request was applied unless a retry answers duplicate",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


_UNSIGNED = ProblemError(401, "unauthorized", "Unauthorized", "the request is not signed as agreed")
"""Every failure of a signature or a request id: one answer that says nothing about which check failed."""


async def _body(request: Request) -> bytes:
    """The body, read up to the largest allowed. Raises ``ProblemError`` (413) beyond it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large(f"a request body is at most {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large(f"a request body is at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _target(request: Request) -> bytes:
    """The request target as sent: the raw path and its query."""
    path = request.scope.get("raw_path", request.url.path.encode()) or b"/"
    query = request.scope.get("query_string", b"")
    return path + (b"?" + query if query else b"")


async def _verified(
    request: Request, verifier: SignatureVerifier, request_ids: RequestIds, *, signed: bytes, body: bytes
) -> None:
    """Raise ``ProblemError`` unless ``signed`` is signed as agreed and the request id is this request's (not one
    verified for another method, path or body: ``api.request_ids``)."""
    if not verifier.verify(signed, request.headers):
        raise _UNSIGNED
    digest = request_digest(request.method, _target(request), body)
    try:
        mine = await run_in_threadpool(request_ids.claim, request.headers["webhook-id"], digest)
    except redis.RedisError:
        raise _unavailable() from None
    if not mine:
        raise _UNSIGNED


async def _signed_body(request: Request, verifier: SignatureVerifier, request_ids: RequestIds) -> bytes:
    """The body, read up to the largest allowed, once its signature verified and its request id is this
    request's. Raises ``ProblemError``."""
    body = await _body(request)
    await _verified(request, verifier, request_ids, signed=body, body=body)
    return body


async def _signed_read(request: Request, verifier: SignatureVerifier, request_ids: RequestIds) -> None:
    """A signed read: no body, and what is signed is its request line — ``"GET /v1/customers/alice"``, the method,
    a space and the target as sent — so a signature names what it reads (the headers of one read are no read of
    another customer, whether or not that request ever reached us). Raises ``ProblemError``."""
    if await _body(request):
        raise _UNSIGNED
    line = request.method.encode("ascii") + b" " + _target(request)
    await _verified(request, verifier, request_ids, signed=line, body=b"")


def create_app(services: ApiServices) -> FastAPI:
    """The ASGI app over ``services``."""
    app = FastAPI(
        title="KuCoin ND-broker provisioner",
        version=services.version,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    verifier, admission, metrics = services.verifier, services.admission, services.metrics
    request_ids = services.request_ids

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return problem_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(ProblemError(exc.status_code, kind, str(exc.detail), headers=dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return problem_response(ProblemError(400, "malformed-request", "Malformed request"))

    @app.post("/v1/events")
    async def post_events(request: Request) -> Response:
        body = await _signed_body(request, verifier, request_ids)
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in _JSON_TYPES:
            raise ProblemError(415, "unsupported-media-type", "Unsupported media type", "send application/json")
        parsed = parse_body(body)
        raws: list[Any] = parsed.events if isinstance(parsed, Batch) else [parsed.raw]
        log: dict[str, Any] = {"kind": "batch" if isinstance(parsed, Batch) else "single", "events": len(raws)}
        request.state.log = log
        try:
            verdicts = await run_in_threadpool(admission.admit, raws)
        except (redis.RedisError, NamingMismatch) as exc:  # a mis-set API: not ready, nothing admitted
            log["error"] = type(exc).__name__
            raise _unavailable() from None
        counts: dict[str, int] = {}
        for verdict in verdicts:
            counts[verdict.status.value] = counts.get(verdict.status.value, 0) + 1
        for name, count in counts.items():
            metrics.events.labels(name).inc(count)
        log.update(counts)
        if isinstance(parsed, Batch):
            return JSONResponse(batch_body(verdicts))
        log["event_id"] = verdicts[0].event_id
        code, answer = single_answer(verdicts[0])
        return JSONResponse(answer, status_code=code)

    @app.get("/v1/customers/{customer_id:path}")
    async def get_customer(request: Request, customer_id: str) -> Response:
        await _signed_read(request, verifier, request_ids)
        if not _CUSTOMER_ID.fullmatch(customer_id):
            raise ProblemError(404, "unknown-customer", "Unknown customer", "no event of this customer was accepted")
        try:
            view = await run_in_threadpool(services.customer, customer_id)
        except redis.RedisError as exc:
            request.state.log = {"error": type(exc).__name__}
            raise _unavailable() from None
        if view is None:
            raise ProblemError(
                404,
                "unknown-customer",
                "Unknown customer",
                "no event of this customer is held: none was accepted, or none accepted was stored and its dead letter"
                " is gone (re-send them)",
            )
        return Response(view.model_dump_json(), media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        try:
            await run_in_threadpool(services.ping)
        except (redis.RedisError, NamingMismatch) as exc:
            request.state.log = {"error": type(exc).__name__, "reason": str(exc)[:300]}
            raise _unavailable() from None
        return JSONResponse({"status": "ready"})

    app.openapi = lambda: document(app)  # type: ignore[method-assign]
    app.add_middleware(ProblemBoundary)
    app.add_middleware(Observe, metrics=metrics)  # added last: outermost, so it sees the boundary's 500
    return app
