"""Step ids: the name under which a step is blocked, retried by an operator, and reported upstream.

One constructor per kind, so a step id is built in one place and compared by value. The ids are plain strings
(they are keys of ``CustomerRecord.blocked`` and ``retry_counts`` in stored records, and an operator types them).

==========================  ==============================================================================
id                          step
==========================  ==============================================================================
``subaccount``              creating the customer's sub-account
``kyc``                     submitting proxy-KYC documents
``fund:<event id>#<line>``  one funding line (a transfer from the Special Account)
``sweep``                   moving the sub-account's balances back at offboarding
``key:<generation>``        issuing the key of a generation
``update:<api key>``        aligning a live key's permissions and IP whitelist
``revoke:<api key>``        deleting a key
``double:<event id>#<line>`` a funding line the ledger shows paid twice (flagged for an operator)
==========================  ==============================================================================
"""

from __future__ import annotations

__all__ = ["KYC", "SUBACCOUNT", "SWEEP", "double", "fund", "funding_line", "is_fund", "issue", "revoke", "update"]

SUBACCOUNT = "subaccount"
KYC = "kyc"
SWEEP = "sweep"


def fund(line_key: str) -> str:
    """The step of funding line ``line_key`` (``<event id>#<index>``)."""
    return f"fund:{line_key}"


def is_fund(step: str) -> bool:
    return step.startswith("fund:")


def funding_line(step: str) -> str:
    """The line key of a ``fund:`` step. Raises ``ValueError`` for any other step."""
    if not is_fund(step):
        raise ValueError(f"{step!r} is not a funding step")
    return step.removeprefix("fund:")


def issue(generation: int) -> str:
    return f"key:{generation}"


def update(api_key: str) -> str:
    return f"update:{api_key}"


def revoke(api_key: str) -> str:
    return f"revoke:{api_key}"


def double(line_key: str) -> str:
    """A funding line the ledger shows paid twice: an operator gets the money back and acknowledges it."""
    return f"double:{line_key}"
