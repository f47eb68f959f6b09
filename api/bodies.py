"""What a ``POST /v1/events`` body is: one event or a batch, within the limits. Pure; raises ``ProblemError``.

==========================================  =====================================================================
body                                        answer
==========================================  =====================================================================
not JSON (or not UTF-8)                     400 ``malformed-body``
``{"events": [...]}``, 1 to 500 entries     a batch (each entry judged on its own), at most ``MAX_BATCH_BYTES``
``{"events": ...}`` with other members,     400 ``malformed-batch``
a non-list, or no entry
more than 500 entries / more bytes          413 ``too-large``
any other JSON value                        one event (``handlers.events.parse_event`` judges it: 422 if wrong)
==========================================  =====================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from api.problems import ProblemError
from handlers.events import MAX_EVENT_BYTES

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_EVENTS", "MAX_BODY_BYTES", "Batch", "Single", "parse_body", "too_large"]

MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024
"""A batch's body: at most 1 MiB (KYC documents travel one event per request)."""
MAX_BODY_BYTES = MAX_EVENT_BYTES
"""A single event's body: the contract's largest event (an approval with three KYC photos)."""


@dataclass(frozen=True)
class Single:
    raw: bytes


@dataclass(frozen=True)
class Batch:
    events: list[Any]


def too_large(detail: str) -> ProblemError:
    return ProblemError(413, "too-large", "Request body too large", detail)


def parse_body(body: bytes) -> Single | Batch:
    """Tell a single event from a batch and enforce the batch's limits."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ProblemError(400, "malformed-body", "Body is not JSON", "the body must be one JSON document") from None
    if not (isinstance(document, dict) and "events" in document):
        return Single(body)
    events = document["events"]
    if set(document) != {"events"} or not isinstance(events, list) or not events:
        raise ProblemError(
            400,
            "malformed-batch",
            "Malformed batch",
            'a batch is {"events": [event, ...]} with 1 to 500 events and no other member',
        )
    if len(events) > MAX_BATCH_EVENTS:
        raise too_large(f"a batch holds at most {MAX_BATCH_EVENTS} events; this one has {len(events)}")
    if len(body) > MAX_BATCH_BYTES:
        raise too_large(f"a batch is at most {MAX_BATCH_BYTES} bytes; this one has {len(body)}")
    return Batch(events)
