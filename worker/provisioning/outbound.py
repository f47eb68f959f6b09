"""Outcome events for the upstream signup system (the ``{prefix}:outbound`` Redis Stream).

Each event has a deterministic ``id`` (same outcome → same id) so a consumer that sees an event twice can drop
the copy, the customer's upstream ``customer_id`` (the upstream's own id, returned to it), our ``customer_ref``,
``occurred_at`` (UTC) and a type-specific payload. Credentials travel only sealed with the delivery keyring.

Types: ``sub_account.created``, ``api_key.issued``, ``api_key.updated``, ``api_key.revoked``,
``funding.completed``, ``funding.refused``, ``kyc.passed``, ``kyc.rejected``, ``customer.offboarded``,
``provisioning.failed``, ``event.refused``, ``event.ignored``.
"""

from __future__ import annotations

from typing import Any

from handlers.records import CustomerRecord
from worker.provisioning.context import utc_iso
from worker.store.customers import OutboundEvent

__all__ = ["outcome"]


def outcome(record: CustomerRecord, kind: str, identity: str, now_ms: int, **payload: Any) -> OutboundEvent:
    """An outbound event about ``record``; ``identity`` makes its id unique per outcome (e.g. the api key)."""
    return OutboundEvent(
        id=f"{kind}:{record.ref}:{identity}",
        type=kind,
        payload={
            "customer_id": record.customer_id,
            "customer_ref": record.ref,
            "occurred_at": utc_iso(now_ms),
            **payload,
        },
    )
