"""Erasure of a closed customer's personal data: what is erased, what is kept and why, and when it is due.

Pure: the shell (``worker.erasure``) reads the record and the clock and applies the decision.

=========================  =======  ==========================================================================
data                       erased?  why
=========================  =======  ==========================================================================
upstream ``customer_id``   yes      personal data (an e-mail address for some upstreams); replaced by
                                    ``erased:<ref>`` in the record and in every stored event
KYC documents, digests     yes      personal data; nothing reads them once the customer is closed
customer reference         kept     a keyed hash: it names the customer in the journal and the audit trail
journal, transfers, keys   kept     the financial audit trail (what was paid, to which sub-account, when),
funding lines, intents              which the books and an auditor must be able to reconcile
sub-account uid and name   kept     the exchange's own record of the account; the name is a keyed hash
=========================  =======  ==========================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from handlers.records import CustomerRecord

__all__ = [
    "ERASED_PREFIX",
    "KEPT",
    "ErasureRefused",
    "check_erasable",
    "erased_id",
    "erasure_due",
    "is_copy_of_erased",
    "is_erased",
    "pseudonymised",
]

ERASED_PREFIX = "erased:"
"""What an erased ``customer_id`` starts with (followed by the ref): still a valid id, never anyone's."""
KEPT = (
    "the customer reference (a keyed hash, not personal data)",
    "the journal, transfers, keys, intents and funding lines: the financial audit trail",
    "the sub-account's uid and name (the exchange's record of the account)",
)
"""What an erasure keeps, and why, as ``customer forget`` prints it."""


@dataclass(frozen=True)
class ErasureRefused(Exception):  # noqa: N818 - reads as what happened
    """The customer's personal data cannot be erased (yet): ``reason`` says why."""

    ref: str
    reason: str

    def __str__(self) -> str:
        return f"customer {self.ref}: {self.reason}"


def erased_id(ref: str) -> str:
    """The ``customer_id`` an erased customer's record and events carry instead of the upstream's."""
    return f"{ERASED_PREFIX}{ref}"


def is_erased(record: CustomerRecord) -> bool:
    return record.customer_id.startswith(ERASED_PREFIX)


def erasure_due(record: CustomerRecord | None, *, now_ms: int, retention_ms: int | None) -> bool:
    """Whether a closed customer's personal data is due for erasure: closed at least ``retention_ms`` ago and not
    yet erased. ``retention_ms`` ``None`` keeps it until an erasure request (``customer forget``)."""
    if record is None or record.closed_at_ms is None or is_erased(record) or retention_ms is None:
        return False
    return now_ms - record.closed_at_ms >= retention_ms


def check_erasable(record: CustomerRecord | None, ref: str) -> CustomerRecord:
    """``record`` if its personal data may be erased now. Raises ``ErasureRefused`` for an unknown customer or one
    not closed (an open customer's id still names its sub-account and its webhooks: offboard it first)."""
    if record is None:
        raise ErasureRefused(ref, "no such customer")
    if record.closed_at_ms is None:
        raise ErasureRefused(ref, "is not closed: offboard it first (its id still names its sub-account)")
    return record


def pseudonymised(stored: str, pseudonym: str) -> str:
    """A stored event's JSON with its ``customer_id`` replaced by ``pseudonym``, as an erasure rewrites it (the same
    text for one already pseudonymised, or one that is not an event object)."""
    event = json.loads(stored)
    if not isinstance(event, dict) or event.get("customer_id") == pseudonym:
        return stored
    return json.dumps({**event, "customer_id": pseudonym}, separators=(",", ":"))


def is_copy_of_erased(stored: str, copy: str, ref: str) -> bool:
    """Whether ``copy`` (an event's stored form, as it arrives again) is the event stored as ``stored`` for the
    erased customer ``ref``: the same once pseudonymised. Such a copy is a duplicate, never a conflict of its id
    (its KYC documents, erased too, are not compared)."""
    pseudonym = erased_id(ref)
    try:
        return json.loads(stored).get("customer_id") == pseudonym and pseudonymised(copy, pseudonym) == stored
    except (ValueError, AttributeError):
        return False
