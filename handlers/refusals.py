"""Refused funding lines an operator's retry may decide again. Pure.

A funding line refused for a cause a setting or the calendar fixes — no cap configured for its currency, the
per-customer cap, the Special Account's daily cap — is not refused for good: once the cause is fixed,
``provisioner customer retry`` (or a replayed dead letter) takes the refusal back and the planner decides the line
again, against the caps of that moment. Any other refusal stands: a line an operator refused, one refused because
the customer was offboarded, or one adopted from a previous system.

Exactly once: a redecidable refusal was decided before any transfer of the line was sent (``client_oid`` is
``None``; the planner and the daily reservation refuse before sending), so nothing of it moved. Taking it back
leaves everything else the record knows of the line (its attempts, a search of the ledger after a loss of our
state) in place, so the line is sent exactly as a new one would be, ledger-first where a lost send is possible.

The upstream heard ``funding.refused`` for the line. Deciding it again may end in ``funding.completed`` for the
same line key (the later event supersedes the refusal), or in another ``funding.refused``: each refusal after a
retry has its own event id (``refusal_identity``: ``<line key>:r<n>``), so the upstream's de-duplication by id
does not drop it as a copy of the first.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from handlers import steps
from handlers.records import CustomerRecord, TransferPurpose, TransferRecord, TransferStatus

__all__ = [
    "HEARD_REFUSAL_NOTE",
    "REDECIDABLE",
    "RefusalCause",
    "daily_cap_reason",
    "may_have_been_taken_back",
    "redecidable",
    "redecide",
    "refusal_cause",
    "refusal_identity",
    "retryable_reason",
]


class RefusalCause(StrEnum):
    """Why a funding line was refused, read from its record."""

    NO_CUSTOMER_CAP = "no_customer_cap"
    CUSTOMER_CAP = "customer_cap"
    NO_DAILY_CAP = "no_daily_cap"
    DAILY_CAP = "daily_cap"
    OTHER = "other"
    """Offboarded, adopted, an operator's verdict, or anything this module does not recognise: it stands."""


REDECIDABLE = frozenset(
    {RefusalCause.NO_CUSTOMER_CAP, RefusalCause.CUSTOMER_CAP, RefusalCause.NO_DAILY_CAP, RefusalCause.DAILY_CAP}
)
"""Causes a setting (or the next UTC day) fixes: a retry decides such a line again."""

HEARD_REFUSAL_NOTE = "refused before our state was lost, as the upstream heard"
"""How a refusal recorded from what the upstream heard (``provisioner recover --heard``) begins its note; the
reason it heard follows after ``": "``."""

_PREFIXES = (
    ("no per-customer funding cap is configured for ", RefusalCause.NO_CUSTOMER_CAP),
    ("per-customer cap of ", RefusalCause.CUSTOMER_CAP),
    ("no daily funding cap is configured for ", RefusalCause.NO_DAILY_CAP),
    ("the Special Account's daily cap of ", RefusalCause.DAILY_CAP),
)
"""How the planner (``handlers.planner._funding``) and the daily reservation (``worker.provisioning.money_steps``)
word each cause; ``tests/handlers/test_refusals.py`` pins them to what those modules write."""


def daily_cap_reason(*, currency: str, cap: Decimal | None, used: Decimal) -> str:
    """Why the daily reservation (``worker.provisioning.money_steps``) refuses a funding line of ``currency``: no
    daily cap is configured for it (``cap`` is ``None``), or the line does not fit in ``cap`` with ``used`` already
    reserved today. Worded so that ``refusal_cause`` reads it as ``NO_DAILY_CAP`` or ``DAILY_CAP``."""
    if cap is None:
        return f"no daily funding cap is configured for {currency}"
    return f"the Special Account's daily cap of {cap} {currency} would be exceeded (used {used})"


def refusal_cause(entry: TransferRecord) -> RefusalCause:
    """The cause of ``entry``'s refusal; ``OTHER`` for an entry that is not a refused funding line decided before
    any send (``client_oid`` set: an operator refused a transfer that was sent)."""
    if entry.purpose is not TransferPurpose.FUND or entry.status is not TransferStatus.REFUSED:
        return RefusalCause.OTHER
    if entry.client_oid is not None or entry.note is None:
        return RefusalCause.OTHER
    return _cause_of(entry.note)


def _cause_of(reason: str) -> RefusalCause:
    """The cause a refusal's wording names, as we told it or as the upstream heard it (``HEARD_REFUSAL_NOTE``)."""
    text = reason.removeprefix(HEARD_REFUSAL_NOTE + ": ")
    return next((cause for prefix, cause in _PREFIXES if text.startswith(prefix)), RefusalCause.OTHER)


def redecidable(record: CustomerRecord) -> list[str]:
    """The funding lines of ``record`` a retry decides again (sorted): refused for a cause in ``REDECIDABLE``, of a
    customer not closed, with no transfer of the line pending or blocked."""
    if record.closed_at_ms is not None:
        return []
    busy = set(record.in_doubt())
    busy |= {steps.funding_line(step) for step in record.blocked if steps.is_fund(step)}
    return sorted(
        key for key, entry in record.transfers.items() if key not in busy and refusal_cause(entry) in REDECIDABLE
    )


def redecide(record: CustomerRecord, keys: list[str]) -> CustomerRecord:
    """``record`` with the refusals of ``keys`` taken back (each must be in ``redecidable(record)``) and their
    retry count raised. Raises ``ValueError`` naming a key that is not redecidable."""
    allowed = set(redecidable(record))
    wrong = [k for k in keys if k not in allowed]
    if wrong:
        raise ValueError(f"funding lines not refused for a cause a retry fixes: {', '.join(wrong)}")
    return record.model_copy(
        update={
            "transfers": {k: v for k, v in record.transfers.items() if k not in keys},
            "redecided": {**record.redecided, **{k: record.redecided.get(k, 0) + 1 for k in keys}},
        }
    )


def refusal_identity(record: CustomerRecord, key: str) -> str:
    """The identity of a ``funding.refused`` event of line ``key``: the key for its first decision, ``<key>:r<n>``
    after the ``n``-th retry took a refusal back (a new outcome, so a new event id)."""
    n = record.redecided.get(key, 0)
    return f"{key}:r{n}" if n else key


def may_have_been_taken_back(entry: TransferRecord, recovered_at_ms: int | None) -> bool:
    """Whether a refused funding line of a record recovered after a loss (``recovered_at_ms``) may have been paid
    since all the same: refused for a cause a retry takes back, by a record from before the loss (a restored
    snapshot's) or as the upstream heard it (a retry's payment may not have reached the upstream before the loss).
    Such a line is looked for in the ledger before the caps decide anything; found nothing, the refusal stands."""
    if recovered_at_ms is None or refusal_cause(entry) not in REDECIDABLE:
        return False
    return (entry.note or "").startswith(HEARD_REFUSAL_NOTE) or entry.at_ms <= recovered_at_ms


def retryable_reason(reason: str | None) -> bool:
    """Whether a refusal worded ``reason`` (as told to the upstream) is one a retry may take back: a cap's."""
    return _cause_of(reason or "") in REDECIDABLE
