"""Outcome events for the upstream signup system (the ``{prefix}:outbound`` Redis Stream).

Each event has a deterministic ``id`` (same outcome → same id: never a time) so a consumer that sees an event twice
can drop the copy, the customer's ``sequence`` number (set when the commit appends it, see
``worker.store.outbound``), the customer's upstream ``customer_id`` (the upstream's own id, returned to it), our
``customer_ref``, ``occurred_at`` (RFC 3339, UTC, milliseconds, ``Z``) and a type-specific payload. Credentials
travel only encrypted (``worker.delivery``). The contract: ``schema/outbound/``.

Types: ``sub_account.created``, ``api_key.issued``, ``api_key.updated``, ``api_key.revoked``,
``funding.completed``, ``funding.refused``, ``kyc.passed``, ``kyc.rejected``, ``customer.offboarded``,
``provisioning.failed``, ``event.refused``, ``event.ignored``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from handlers.records import CustomerRecord
from worker.provisioning.context import utc_iso
from worker.store.customers import OutboundEvent

__all__ = ["digest", "failed", "key_updated", "outcome"]


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


def failed(record: CustomerRecord, step: str, reason: str, now_ms: int, **fields: Any) -> OutboundEvent:
    """``provisioning.failed`` for ``step`` (with ``fields``: a ``double:`` step's ``second_payments``), sent with
    the commit that blocks it. Its id names the record version that commit writes, so a step blocked again after a
    retry is a new outcome, and the same commit the same one; and what it says (``digest``), so that after a
    rollback (versions restart from the snapshot's) another failure at a version told before is not taken for
    that one's copy."""
    identity = f"{step}:v{record.version + 1}:{digest(reason, fields)}"
    return outcome(record, "provisioning.failed", identity, now_ms, step=step, reason=reason, **fields)


def key_updated(
    record: CustomerRecord, api_key: str, permissions: Sequence[str], ip_whitelist: Sequence[str], now_ms: int
) -> OutboundEvent:
    """``api_key.updated`` of ``api_key`` (its new permissions and whitelist), sent with the commit that records
    them. Its id names that commit's record version and what it says, as ``failed``'s does."""
    identity = f"{api_key}:{record.version + 1}:{digest(list(permissions), list(ip_whitelist))}"
    return outcome(
        record,
        "api_key.updated",
        identity,
        now_ms,
        api_key=api_key,
        permissions=list(permissions),
        ip_whitelist=list(ip_whitelist),
    )


def digest(*content: Any) -> str:
    """Eight hex digits of SHA-256 over ``content`` as canonical JSON: ids of different outcomes differ."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]
