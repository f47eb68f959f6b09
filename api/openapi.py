"""The OpenAPI document of the API (``GET /openapi.json``, committed as ``schema/openapi.json``).

FastAPI lists the routes; this module writes what FastAPI cannot see because the routes read raw bytes (they must
verify the signature over the exact body): the request body (one event — the contract of
``schema/events.schema.json`` — or a batch), the signature headers as a security requirement, and every answer
with its schema, problems included. ``document`` is deterministic, so the committed copy can be compared.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from api.bodies import MAX_BATCH_EVENTS
from api.problems import PROBLEM_JSON, Problem
from handlers.customer_view import CustomerView
from handlers.events import schema as event_schema

__all__ = ["document", "published_document"]

_REF = "#/components/schemas/{model}"


class Receipt(BaseModel):
    """The answer to one event: accepted (202) or a duplicate of an accepted one (200)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    status: str = Field(pattern="^(accepted|duplicate)$")


class BatchResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None
    """``null`` for a refused entry without a readable id."""
    status: str = Field(pattern="^(accepted|duplicate|refused|conflict)$")
    field: str | None = None
    reason: str | None = None


class BatchResults(BaseModel):
    """One result per event of the batch, in input order."""

    model_config = ConfigDict(extra="forbid")
    results: list[BatchResult]


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str


def _problem(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}},
    }
    if retry_after:
        answer["headers"] = {
            "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}
        }
    return answer


def _json(model: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}}


_SIGNED: list[dict[str, list[str]]] = [{"webhookId": [], "webhookTimestamp": [], "webhookSignature": []}]
_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/events", "post"): {
        "summary": "Publish one event or a batch of events",
        "operationId": "publishEvents",
        "security": _SIGNED,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [{"$ref": _REF.format(model="Event")}, {"$ref": _REF.format(model="EventBatch")}]
                    }
                }
            },
        },
        "responses": {
            "202": _json("Receipt", "Accepted: durably handed off to the worker"),
            "200": {
                "description": "One event: a duplicate of an accepted one. A batch: one result per event, in order",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": _REF.format(model="Receipt")},
                                {"$ref": _REF.format(model="BatchResults")},
                            ]
                        }
                    }
                },
            },
            "400": _problem("The body is not JSON, or a malformed batch"),
            "401": _problem("Not signed as agreed"),
            "409": _problem("The event id was already accepted with other content"),
            "413": _problem("Body or batch too large"),
            "415": _problem("Not application/json"),
            "422": _problem("The event breaks the contract: `field` and `reason` say how"),
            "503": _problem("Redis is unavailable: nothing was applied; retry after Retry-After", retry_after=True),
        },
    },
    ("/v1/customers/{customer_id}", "get"): {
        "summary": "The customer's provisioning state, as the upstream sees it",
        "operationId": "getCustomer",
        "security": _SIGNED,
        "responses": {
            "200": _json("CustomerView", "The customer's view"),
            "401": _problem("Not signed as agreed"),
            "404": _problem("No event of this customer is held (none accepted, or their dead letters are gone)"),
            "503": _problem("Redis is unavailable; retry after Retry-After", retry_after=True),
        },
    },
    ("/healthz", "get"): {
        "summary": "The process is alive",
        "operationId": "healthz",
        "security": [],
        "responses": {"200": _json("Health", "Alive")},
    },
    ("/readyz", "get"): {
        "summary": "Redis answers: the API can take events",
        "operationId": "readyz",
        "security": [],
        "responses": {
            "200": _json("Health", "Ready"),
            "503": _problem("Redis is unavailable", retry_after=True),
        },
    },
}


def _event_schemas() -> dict[str, Any]:
    """The event contract's definitions, moved under ``components/schemas`` (``Event`` is the union)."""
    document = event_schema()
    text = json.dumps(document).replace('"#/$defs/', '"#/components/schemas/')
    moved = json.loads(text)
    definitions: dict[str, Any] = moved.pop("$defs")
    for key in ("$schema", "$id"):
        moved.pop(key, None)
    definitions["Event"] = moved
    definitions["EventBatch"] = {
        "type": "object",
        "description": f"1 to {MAX_BATCH_EVENTS} events, at most 1 MiB; each is judged on its own",
        "properties": {
            "events": {
                "type": "array",
                "items": {"$ref": _REF.format(model="Event")},
                "minItems": 1,
                "maxItems": MAX_BATCH_EVENTS,
            }
        },
        "required": ["events"],
        "additionalProperties": False,
    }
    return definitions


def _model_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (Problem, Receipt, BatchResult, BatchResults, Health, CustomerView):
        schema = model.model_json_schema(ref_template=_REF, mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def document(app: FastAPI) -> dict[str, Any]:
    """The whole document (cached on the app)."""
    if app.openapi_schema is None:
        base = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for (path, method), operation in _OPERATIONS.items():
            base["paths"][path][method] = {**base["paths"][path][method], **operation}
            if path.startswith("/v1/customers/"):
                base["paths"][path][method]["parameters"] = [
                    {
                        "name": "customer_id",
                        "in": "path",
                        "required": True,
                        "description": "the upstream's customer id (percent-encode a '/')",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 64},
                    }
                ]
        base["components"] = {
            "schemas": {**_event_schemas(), **_model_schemas()},
            "securitySchemes": {
                "webhookId": {"type": "apiKey", "in": "header", "name": "webhook-id"},
                "webhookTimestamp": {"type": "apiKey", "in": "header", "name": "webhook-timestamp"},
                "webhookSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-signature",
                    "description": "Standard Webhooks: v1,<base64 HMAC-SHA256 of id.timestamp.body>",
                },
            },
        }
        app.openapi_schema = base
    return app.openapi_schema


def published_document() -> dict[str, Any]:
    """The document as ``provisioner schema --write`` commits it: the app built on development settings (nothing
    is connected to; the environment is not read)."""
    from api.app import create_app
    from api.bootstrap import build_services
    from worker.settings import Profile, Settings

    settings, _ = Settings.from_env({}, profile=Profile.API)
    return document(create_app(build_services(settings)))
