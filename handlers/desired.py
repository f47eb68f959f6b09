"""Fold a customer's events into the state they ask for. Pure, and independent of arrival order.

Every rule is a function of the *set* of events, never of the order they arrived in: duplicates collapse by
id, and "newest" means greatest ``(occurred_at, id)``. So at-least-once delivery and re-ordering cannot change
what we converge to.

- ``created``: a ``customer.created`` event exists.
- ``offboarded``: a ``customer.offboarded`` event exists; it dominates everything else.
- ``access``: permissions of the newest KYC approval; IP whitelist of the newest KYC approval or IP change.
- ``requested_rotations``: rotation requests that occurred after the first KYC approval (a request from before
  any key existed has nothing to rotate).
- ``funding``: every funding line of every KYC approval and every top-up (``customer.funding_requested``), each
  identified by ``<event id>#<line index>``, in the order the events occurred. Lines wait for the first approval;
  offboarding refuses those not yet sent.
- ``kyc_documents_event``: the newest KYC approval, when it carried documents (for proxy KYC): a newer approval
  without documents is the upstream's own KYC and lifts the review of earlier ones.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from handlers.events import (
    CustomerCreated,
    CustomerOffboarded,
    Event,
    FundingRequested,
    IpChanged,
    KeyRotationRequested,
    KycApproved,
)

__all__ = ["Access", "DesiredState", "FundingInstruction", "canonical_ips", "carries_funding", "fold"]


def canonical_ips(ips: Iterable[str]) -> tuple[str, ...]:
    """IP addresses in one canonical order, so two whitelists compare as sets."""
    return tuple(
        sorted(
            {str(ipaddress.ip_address(ip)) for ip in ips},
            key=lambda ip: (ipaddress.ip_address(ip).version, ipaddress.ip_address(ip)),
        )
    )


@dataclass(frozen=True)
class Access:
    """What the customer's live key must allow: permissions (sorted) and IP whitelist (canonical order)."""

    permissions: tuple[str, ...]
    ip_whitelist: tuple[str, ...]


@dataclass(frozen=True)
class FundingInstruction:
    key: str
    """``<event id>#<line index>``: stable across duplicates, unique per line."""
    event_id: str
    currency: str
    amount: Decimal
    occurred_ms: int = 0
    """When the event that asked for it occurred (ms since the epoch)."""


@dataclass(frozen=True)
class DesiredState:
    customer_id: str | None
    created: bool
    offboarded: bool
    access: Access | None
    requested_rotations: int
    funding: tuple[FundingInstruction, ...]
    kyc_documents_event: str | None
    futures_asked: bool = False
    """Whether any approval asked for the futures permission (a key may have held it, even if a newer approval
    withdrew it)."""

    @classmethod
    def empty(cls) -> DesiredState:
        return cls(None, False, False, None, 0, (), None)


def fold(events: Iterable[Event], *, documents_held: Iterable[str] = ()) -> DesiredState:
    """The state the events ask for. ``documents_held`` lists KYC-approval event ids that came with documents
    (the documents themselves live elsewhere, encrypted, until submitted)."""
    unique = {e.id: e for e in events}
    ordered = sorted(unique.values(), key=lambda e: e.order_key)
    if not ordered:
        return DesiredState.empty()
    held = set(documents_held)
    approvals = [e for e in ordered if isinstance(e, KycApproved)]
    whitelist_events = [e for e in ordered if isinstance(e, KycApproved | IpChanged)]

    access = None
    if approvals:
        newest_ips = whitelist_events[-1].data.ip_whitelist
        access = Access(
            permissions=tuple(sorted(p.value for p in approvals[-1].data.permissions)),
            ip_whitelist=canonical_ips(newest_ips),
        )
    first_approval = approvals[0].order_key if approvals else None
    rotations = sum(
        1
        for e in ordered
        if isinstance(e, KeyRotationRequested) and first_approval is not None and e.order_key > first_approval
    )
    funding = tuple(
        FundingInstruction(f"{e.id}#{i}", e.id, line.currency, line.decimal_amount, e.occurred_ns // 1_000_000)
        for e in ordered
        if isinstance(e, KycApproved | FundingRequested)
        for i, line in enumerate(e.data.funding)
    )
    # the newest approval decides: one without documents is the upstream's own KYC (it lifts a review or a
    # rejection of earlier documents); one with documents is reviewed by KuCoin first
    documents = [approvals[-1].id] if approvals and approvals[-1].id in held else []
    return DesiredState(
        customer_id=ordered[0].customer_id,
        created=any(isinstance(e, CustomerCreated) for e in ordered),
        offboarded=any(isinstance(e, CustomerOffboarded) for e in ordered),
        access=access,
        requested_rotations=rotations,
        funding=funding,
        kyc_documents_event=documents[-1] if documents else None,
        futures_asked=any(p.value == "futures" for e in approvals for p in e.data.permissions),
    )


def carries_funding(event: Event) -> bool:
    """Whether ``event`` asks for funding lines (an approval with funding, or a top-up)."""
    return isinstance(event, KycApproved | FundingRequested) and bool(event.data.funding)
