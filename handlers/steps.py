"""Step ids: the name under which a step is blocked, retried by an operator, and reported upstream.

One constructor per kind, so a step id is built in one place and compared by value. A ``StepId`` is a plain
string at run time (they are keys of ``CustomerRecord.blocked`` and ``retry_counts`` in stored records, and an
operator types them), but the type checker tells it apart from any other string: only a constructor here, or
``parse`` of what an operator typed, makes one.

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

from typing import NewType

__all__ = [
    "KINDS",
    "KYC",
    "SUBACCOUNT",
    "SWEEP",
    "StepId",
    "double",
    "fund",
    "funding_line",
    "is_fund",
    "issue",
    "parse",
    "revoke",
    "update",
]

StepId = NewType("StepId", str)
"""A step id, built by a constructor of this module (stored and compared as its string)."""

SUBACCOUNT = StepId("subaccount")
KYC = StepId("kyc")
SWEEP = StepId("sweep")

KINDS = ("subaccount", "kyc", "sweep", "fund", "key", "update", "revoke", "double")
"""Every kind of step id: the whole id for the first three, the part before ``:`` for the others."""
_BARE = frozenset(KINDS[:3])


def fund(line_key: str) -> StepId:
    """The step of funding line ``line_key`` (``<event id>#<index>``)."""
    return StepId(f"fund:{line_key}")


def is_fund(step: str) -> bool:
    return step.startswith("fund:")


def funding_line(step: str) -> str:
    """The line key of a ``fund:`` step. Raises ``ValueError`` for any other step."""
    if not is_fund(step):
        raise ValueError(f"{step!r} is not a funding step")
    return step.removeprefix("fund:")


def issue(generation: int) -> StepId:
    return StepId(f"key:{generation}")


def update(api_key: str) -> StepId:
    return StepId(f"update:{api_key}")


def revoke(api_key: str) -> StepId:
    return StepId(f"revoke:{api_key}")


def double(line_key: str) -> StepId:
    """A funding line the ledger shows paid twice: an operator gets the money back and acknowledges it."""
    return StepId(f"double:{line_key}")


def parse(text: str) -> StepId:
    """The step id ``text`` names (what an operator typed). Raises ``ValueError`` naming the step and its kind
    when the kind is none of ``KINDS``, or a kind that takes an argument has none (``fund:``)."""
    if text in _BARE:
        return StepId(text)
    kind, sep, arg = text.partition(":")
    if not sep or kind not in KINDS or kind in _BARE:
        raise ValueError(f"step {text!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    if not arg:
        raise ValueError(f"step {text!r}: a {kind} step names its {_ARG[kind]} after {kind + ':'!r}")
    if kind == "key" and not arg.isdigit():
        raise ValueError(f"step {text!r}: a key step names its generation (a number), not {arg!r}")
    return StepId(text)


_ARG = {"fund": "funding line", "key": "generation", "update": "api key", "revoke": "api key", "double": "funding line"}
