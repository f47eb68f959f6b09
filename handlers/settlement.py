"""Judging a transfer whose answer was lost, from the Special Account's ledger. Pure.

A balance is never evidence: the customer trades and deposits on the very sub-account we fund. What only our
transfer can produce is the exchange's record of it. Where the exchange deduplicates or refuses a repeated
clientOid, re-sending under the same clientOid *is* the evidence (an orderId, or "clientOid duplicated") and needs
no judging here. Where it may execute a repeat again, the shell reads the Special Account's ledger instead — every
movement of the Special Account, listed by the exchange — and this module decides what the entries prove:

- an entry naming our clientOid: committed;
- entries that name other clientOids, or orderIds we know (other lines of ours), or whose transfer went to
  another sub-account: not ours;
- what is left, compared with how many lines of this customer committed without us learning their orderId:
  exactly one unexplained entry is ours (committed); none means nothing of ours moved (not committed);
- an entry that carries no id at all could be anyone's: undecided, for an operator with the entries shown.

"Not committed" relies on the ledger being complete for the window: the shell looks only after the ledger's
listing lag has passed since the last send (``Policy.transfer_resolve_delay_ms``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

__all__ = ["Judgement", "LedgerRow", "Verdict", "count_second_payments", "judge_by_ledger", "second_payment_times"]


class Verdict(StrEnum):
    COMMITTED = "committed"
    NOT_COMMITTED = "not_committed"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class LedgerRow:
    """A Special Account ledger entry of the transfer's currency, direction and amount, within the window."""

    entry_id: str
    amount: Decimal
    created_at_ms: int
    order_id: str | None = None
    client_oid: str | None = None
    counterparty: str | None = None
    """The sub-account the transfer went to (OUT) or came from (IN), read from Get Transfer History; ``None`` when
    the entry carries no orderId or the lookup was not made."""


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str
    order_id: str | None = None
    client_oid: str | None = None
    """The clientOid the ledger names for our transfer (committed from an entry naming it); ``None`` when the
    entry names none (found by its counterparty): the attempt it was sent under is then unknown."""


def judge_by_ledger(
    *,
    client_oids: Collection[str],
    uid: str,
    rows: Sequence[LedgerRow],
    known_order_ids: Iterable[str],
    unexplained_commits: int = 0,
    siblings_in_doubt: int = 0,
) -> Judgement:
    """What ``rows`` (the ledger entries of the transfer's currency, direction and amount in the window where it can
    have happened) prove about our transfer under any of ``client_oids`` (its attempts) to or from sub-account
    ``uid``.

    ``known_order_ids``: orderIds of transfers we already know (this customer's); ``unexplained_commits``: lines of
    this customer with the same currency, direction and amount that committed inside the window without our learning
    their orderId (a verdict without one), whose entries are among the rows; ``siblings_in_doubt``: other lines of
    this customer with the same currency, direction and amount whose outcome is itself unknown (an entry may be
    theirs). An entry of unknown time of such a commit is counted by the caller as a sibling in doubt.
    """
    ours = set(client_oids)
    mine = [r for r in rows if r.client_oid is not None and r.client_oid in ours]
    if mine:
        first = mine[0]
        return Judgement(
            Verdict.COMMITTED, f"ledger entry {first.entry_id} names our clientOid", first.order_id, first.client_oid
        )
    known = set(known_order_ids)
    anonymous = [r for r in rows if r.client_oid is None and r.order_id is None]
    if anonymous:
        listed = ", ".join(f"{r.entry_id} ({r.amount} at {r.created_at_ms})" for r in anonymous[:10])
        return Judgement(
            Verdict.UNDECIDED,
            f"{len(anonymous)} ledger entr{'y' if len(anonymous) == 1 else 'ies'} of the same amount since the first "
            f"send carry no orderId or clientOid, so none can be told ours or someone else's: {listed}",
        )
    unknown_counterparty = [
        r for r in rows if r.client_oid is None and r.order_id not in known and r.counterparty is None
    ]
    if unknown_counterparty:
        listed = ", ".join(f"order {r.order_id}" for r in unknown_counterparty[:10])
        return Judgement(Verdict.UNDECIDED, f"the transfers behind these ledger entries could not be read: {listed}")
    candidates = [r for r in rows if r.client_oid is None and r.order_id not in known and r.counterparty == uid]
    extra = len(candidates) - unexplained_commits
    if extra <= 0:
        return Judgement(
            Verdict.NOT_COMMITTED,
            f"no ledger entry since the first send is ours ({len(rows)} of the same amount, each explained)",
        )
    listed = ", ".join(f"order {r.order_id}" for r in candidates[:10])
    if siblings_in_doubt:
        return Judgement(
            Verdict.UNDECIDED,
            f"{len(candidates)} unexplained transfer(s) of this amount with sub-account {uid} ({listed}), and "
            f"{siblings_in_doubt} other line(s) of the same amount are in doubt too: cannot tell whose it is",
        )
    if extra == 1 and len(candidates) == 1:
        only = candidates[0]
        return Judgement(
            Verdict.COMMITTED,
            f"ledger entry {only.entry_id} (order {only.order_id}) moved this amount with sub-account {uid} and is "
            "explained by no other transfer of ours",
            only.order_id,
        )
    return Judgement(
        Verdict.UNDECIDED,
        f"{len(candidates)} transfers of this amount with sub-account {uid} since the first send, "
        f"{unexplained_commits} explained: cannot tell which is ours: {listed}",
    )


def count_second_payments(
    *,
    client_oids: Collection[str],
    uid: str,
    rows: Sequence[LedgerRow],
    known_order_ids: Iterable[str],
    unexplained_commits: int = 0,
    siblings_in_doubt: int = 0,
    own_order_unknown: bool = False,
) -> int | None:
    """How many transfers of a line beyond the one we know ``rows`` show (the line's amount, in the window where an
    earlier send of it may have gone through): entries naming one of the line's ``client_oids`` under an orderId we
    do not know, and entries to sub-account ``uid`` no other transfer of ours explains. ``own_order_unknown``: the
    line's own payment is one of those (committed without its orderId: on an operator's word that named none, by a
    ledger entry or a duplicate refusal that carried none), so one fewer.
    ``None`` when the ledger cannot tell (entries without ids, transfers that could not be read, other lines of this
    amount in doubt)."""
    known = set(known_order_ids)
    if any(r.client_oid is None and r.order_id is None for r in rows):
        return None
    unread = [r for r in rows if r.client_oid is None and r.order_id not in known and r.counterparty is None]
    if unread:
        return None
    named, candidates = _may_be_ours(client_oids, uid, rows, known)
    extra = max(0, len(candidates) - unexplained_commits)
    own = 1 if own_order_unknown else 0
    if extra and siblings_in_doubt:
        # which candidates are ours is unknown: the named entries are a floor, unless one of them may be the line's own
        return None if not named or own else len(named)
    return max(0, len(named) + extra - own)


def second_payment_times(
    *, client_oids: Collection[str], uid: str, rows: Sequence[LedgerRow], known_order_ids: Iterable[str]
) -> list[int]:
    """When the entries of ``rows`` that may be a line's second payments executed (the exchange's ``createdAt``,
    ms): those ``count_second_payments`` counts from — naming one of the line's ``client_oids`` under an orderId we
    do not know, or to sub-account ``uid`` with no id of ours. Which of them are the second payments may be
    unknown (one of them may be the line's first); each day they fall on can hold at most that many."""
    named, candidates = _may_be_ours(client_oids, uid, rows, set(known_order_ids))
    return [r.created_at_ms for r in (*named, *candidates)]


def _may_be_ours(
    client_oids: Collection[str], uid: str, rows: Sequence[LedgerRow], known: Collection[str]
) -> tuple[list[LedgerRow], list[LedgerRow]]:
    """The entries of ``rows`` under an orderId we do not know that may be a payment of the line: those naming one
    of its ``client_oids``, and those without a clientOid that went to sub-account ``uid``."""
    ours = set(client_oids)
    named = [r for r in rows if r.client_oid is not None and r.client_oid in ours and r.order_id not in known]
    candidates = [r for r in rows if r.client_oid is None and r.order_id not in known and r.counterparty == uid]
    return named, candidates
