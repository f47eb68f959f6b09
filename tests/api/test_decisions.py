"""The API's pure decisions, without Redis or a server: bodies, statuses, the signature check."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from api.bodies import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, Batch, Single, parse_body
from api.problems import ProblemError
from api.signing import SignatureVerifier
from api.statuses import batch_body, single_answer
from tests.api.live import OTHER_SECRET, SECRET, sign
from worker.runtime.admission import AdmissionStatus, Verdict


def test_a_single_event_is_202_when_accepted_and_200_when_a_duplicate() -> None:
    assert single_answer(Verdict(AdmissionStatus.ACCEPTED, "e1")) == (202, {"id": "e1", "status": "accepted"})
    assert single_answer(Verdict(AdmissionStatus.DUPLICATE, "e1")) == (200, {"id": "e1", "status": "duplicate"})


@pytest.mark.parametrize(
    ("status", "code"), [(AdmissionStatus.REFUSED, 422), (AdmissionStatus.CONFLICT, 409)], ids=["refused", "conflict"]
)
def test_refusals_and_conflicts_are_problems_with_field_and_reason(status: AdmissionStatus, code: int) -> None:
    with pytest.raises(ProblemError) as raised:
        single_answer(Verdict(status, "e1", "id", "because"))
    assert raised.value.status == code
    assert raised.value.extensions == {"field": "id", "reason": "because", "event_id": "e1"}


def test_a_batch_body_keeps_input_order_and_names_fields_only_when_refused() -> None:
    verdicts = [
        Verdict(AdmissionStatus.REFUSED, None, "type", "unknown"),
        Verdict(AdmissionStatus.ACCEPTED, "a"),
        Verdict(AdmissionStatus.CONFLICT, "b", "id", "reused"),
        Verdict(AdmissionStatus.DUPLICATE, "a"),
    ]
    assert batch_body(verdicts) == {
        "results": [
            {"id": None, "status": "refused", "field": "type", "reason": "unknown"},
            {"id": "a", "status": "accepted"},
            {"id": "b", "status": "conflict", "field": "id", "reason": "reused"},
            {"id": "a", "status": "duplicate"},
        ]
    }


def test_bodies_are_single_events_or_bounded_batches() -> None:
    assert parse_body(b'{"id": "x"}') == Single(b'{"id": "x"}')
    assert parse_body(b"[1]") == Single(b"[1]"), "not an object: the contract refuses it as an event"
    assert parse_body(b'{"events": [{"id": "x"}, 1]}') == Batch([{"id": "x"}, 1])
    for raw, status in [
        (b"", 400),
        (b"{", 400),
        (b'{"events": []}', 400),
        (b'{"events": "x"}', 400),
        (b'{"events": [1], "id": "x"}', 400),
        (json.dumps({"events": [1] * (MAX_BATCH_EVENTS + 1)}).encode(), 413),
        (json.dumps({"events": ["x" * MAX_BATCH_BYTES]}).encode(), 413),
    ]:
        with pytest.raises(ProblemError) as raised:
            parse_body(raw)
        assert raised.value.status == status, raw[:40]


def test_the_verifier_takes_any_configured_secret_within_five_minutes() -> None:
    verifier = SignatureVerifier.parse(f"{SECRET}, {OTHER_SECRET}")
    body = b'{"id":"x"}'
    assert verifier.verify(body, sign(body))
    assert verifier.verify(body, sign(body, secret=OTHER_SECRET))
    assert verifier.verify(body, sign(body, at=datetime.now(UTC) - timedelta(minutes=4, seconds=50)))
    assert not verifier.verify(body, sign(body, at=datetime.now(UTC) - timedelta(minutes=5, seconds=10)))
    assert not verifier.verify(body + b" ", sign(body))
    assert not verifier.verify(b"\xff", {**sign(body)}), "a body that is not UTF-8 is a no, not an exception"
    assert not verifier.verify(body, {**sign(body), "webhook-signature": "v1," + "A" * 2000}), "oversized header"
    assert not SignatureVerifier.parse(OTHER_SECRET).verify(body, sign(body))
