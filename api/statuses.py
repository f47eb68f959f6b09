"""From admission verdicts to HTTP answers: pure decisions, tested without Redis or a server.

==============  ===============  ==========================================================================
verdict         single event     batch entry
==============  ===============  ==========================================================================
accepted        202              ``{"id", "status": "accepted"}``
duplicate       200              ``{"id", "status": "duplicate"}``
refused         422 problem      ``{"id", "status": "refused", "field", "reason"}``
conflict        409 problem      ``{"id", "status": "conflict", "field": "id", "reason"}``
==============  ===============  ==========================================================================

A batch is answered 200 once every entry has its verdict (each accepted one durably handed off).
"""

from __future__ import annotations

from typing import Any

from api.problems import ProblemError
from worker.runtime.admission import AdmissionStatus, Verdict

__all__ = ["batch_body", "single_answer"]


def single_answer(verdict: Verdict) -> tuple[int, dict[str, Any]]:
    """The status and JSON body for one event; raises ``ProblemError`` for a refusal or a conflict."""
    if verdict.status is AdmissionStatus.ACCEPTED:
        return 202, {"id": verdict.event_id, "status": verdict.status.value}
    if verdict.status is AdmissionStatus.DUPLICATE:
        return 200, {"id": verdict.event_id, "status": verdict.status.value}
    if verdict.status is AdmissionStatus.CONFLICT:
        raise ProblemError(
            409,
            "event-id-conflict",
            "Event id already used",
            verdict.reason,
            field=verdict.field,
            reason=verdict.reason,
            event_id=verdict.event_id,
        )
    raise ProblemError(
        422,
        "event-refused",
        "Event refused",
        f"{verdict.field}: {verdict.reason}",
        field=verdict.field,
        reason=verdict.reason,
        event_id=verdict.event_id,
    )


def batch_body(verdicts: list[Verdict]) -> dict[str, Any]:
    """The 200 body of a batch: one result per event, in input order."""
    results = []
    for v in verdicts:
        entry: dict[str, Any] = {"id": v.event_id, "status": v.status.value}
        if v.field is not None:
            entry["field"] = v.field
            entry["reason"] = v.reason
        results.append(entry)
    return {"results": results}
