"""Event messages as an authenticated publisher sends them, for tests that put events on the queue themselves.

The worker takes only an event message that carries its proof (``worker.event_proof``); these helpers sign the
event exactly as given (even one the contract refuses), so a test can reach the checks that come after the proof.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from worker.event_proof import PROOF_OPTION, EventProofs

__all__ = ["call_signed", "signed_message"]


def signed_message(
    actor: dramatiq.Actor[[dict[str, Any]], None], event: Any, proofs: EventProofs
) -> dramatiq.Message[Any]:
    """``actor``'s message for ``event`` with the proof a publisher holding ``proofs`` attaches."""
    proof: dict[str, Any] = {PROOF_OPTION: proofs.sign(event)}
    return actor.message_with_options(args=(event,), **proof)


def call_signed(actor: dramatiq.Actor[[dict[str, Any]], None], event: Any, proofs: EventProofs) -> None:
    """Run ``actor``'s function on ``event`` in this thread, as the worker does for a signed message (the current
    message is the signed one while it runs)."""
    token = CurrentMessage._MESSAGE.set(signed_message(actor, event, proofs))
    try:
        actor.fn(event)
    finally:
        CurrentMessage._MESSAGE.reset(token)
