"""Publishing events into the worker: the Python API behind ``provisioner publish``.

Each event is validated against the contract before it is enqueued, so the publisher learns at once what is
wrong with it; refusals are also recorded for the audit trail. KYC documents are sealed to the worker's intake key
before the event is enqueued (``worker.sealing``, as the HTTP API does): the message in Redis never carries them in
the clear, and the publisher needs no key that opens anything. Every message carries the proof of its event
(``worker.event_proof``), without which the worker takes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import dramatiq

from handlers.events import KycApproved
from worker.event_proof import PROOF_OPTION, EventProofs
from worker.intake import Intake, Refused
from worker.runtime.actors import ENVELOPE, Actors
from worker.runtime.handoff import Handoff
from worker.sealing import IntakeSealer

__all__ = ["LineResult", "Published", "Publisher"]


@dataclass(frozen=True)
class Published:
    event_id: str
    customer_ref: str
    queue: str
    message_id: str


@dataclass(frozen=True)
class LineResult:
    line: int
    outcome: Published | Refused


class Publisher:
    def __init__(
        self,
        intake: Intake,
        sealer: IntakeSealer,
        actors: Actors,
        handoff: Handoff,
        *,
        proofs: EventProofs,
        customer_ref: Any,
    ) -> None:
        self._intake = intake
        self._proofs = proofs
        self._sealer = sealer
        self._actors = actors
        self._handoff = handoff
        self._customer_ref = customer_ref

    def publish(self, raw: str | bytes | dict[str, Any]) -> Published | Refused:
        """Validate one event and send it through the hand-off (recorded until a worker has stored it, so that
        no loss inside the queue can lose it). Returns where it went, or why it was refused. Raises
        ``redis.RedisError`` if it could not be sent: publishing the same event again is safe."""
        checked = self._intake.check(raw)
        if isinstance(checked, Refused):
            checked = self._intake.refuse(raw, checked, stage="publish")  # stored meanwhile: sent as a copy
            if isinstance(checked, Refused):
                return checked
        payload = checked.model_dump(mode="json")
        if isinstance(checked, KycApproved) and checked.data.kyc is not None:
            sealed = self._sealer.seal(checked.data.kyc.model_dump(mode="json"), event_id=checked.id)
            payload["data"]["kyc"] = {ENVELOPE: sealed.model_dump()}
        else:
            payload["data"].pop("kyc", None)
        actor = self._actors.for_event(payload)
        proof: dict[str, Any] = {PROOF_OPTION: self._proofs.sign(payload)}
        signed = actor.message_with_options(args=(payload,), **proof)
        message: dramatiq.Message[Any] = self._handoff.send(signed)
        return Published(checked.id, self._customer_ref(checked.customer_id), actor.queue_name, message.message_id)

    def publish_lines(self, lines: Iterable[str | bytes]) -> Iterator[LineResult]:
        """Publish JSON Lines; blank lines are skipped; every other line yields its result, refused or not. Lines
        may be bytes: one that is not UTF-8 is refused by its number, and the lines after it are still read."""
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield LineResult(number, self.publish(line.strip()))

    def publish_file(self, stream: BinaryIO | TextIO) -> Iterator[LineResult]:
        """Publish a JSON Lines file; open it in binary mode, so that a line that is not UTF-8 is refused alone."""
        return self.publish_lines(stream)
