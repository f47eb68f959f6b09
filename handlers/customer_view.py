"""The upstream's view of one customer: what its events asked for and how far the worker got, decided purely.

``customer_view`` is a function of the folded events (``DesiredState``), the record and the last journal entry.
It shows the stage, the sub-account uid, the live keys' ids (never a secret), each funding line with its state,
the blocked steps with what fixes them, and the last change — and nothing of the upstream's personal data beyond
its own customer id (no KYC field, no IP address).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from handlers import steps
from handlers.desired import DesiredState
from handlers.records import CustomerRecord, KycStage, TransferStatus

__all__ = ["BlockedStep", "CustomerView", "FundingLineView", "KeyView", "LastChange", "Stage", "customer_view"]


class Stage(StrEnum):
    RECEIVED = "received"
    """Events are stored, none asks for a sub-account yet."""
    CREATING = "creating"
    """The sub-account is asked for and not made yet."""
    AWAITING_APPROVAL = "awaiting_approval"
    """The sub-account exists; no ``customer.kyc_approved`` yet."""
    KYC_REVIEW = "kyc_review"
    """Proxy-KYC documents are with the exchange."""
    KYC_REJECTED = "kyc_rejected"
    PROVISIONING = "provisioning"
    """Approved; the key is not issued yet."""
    ACTIVE = "active"
    """A live key is issued and delivered."""
    OFFBOARDING = "offboarding"
    """Offboarded: keys are being revoked and balances moved back."""
    CLOSED = "closed"


class FundingState(StrEnum):
    PENDING = "pending"
    """Asked for; no transfer recorded yet (waiting for the key, a cap, or its turn)."""
    BLOCKED = "blocked"
    """Its step is blocked (see ``blocked``)."""
    ACCEPTED = TransferStatus.ACCEPTED.value
    COMMITTED = TransferStatus.COMMITTED.value
    REFUSED = TransferStatus.REFUSED.value
    UNCONFIRMED = TransferStatus.UNCONFIRMED.value


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeyView(_View):
    api_key: str
    """The key's public id (never its secret or passphrase)."""
    generation: int
    permissions: tuple[str, ...]
    created_at_ms: int


class FundingLineView(_View):
    line: str
    """``<event id>#<index>``, as in ``funding.completed`` / ``funding.refused``."""
    event_id: str
    currency: str
    amount: str
    state: FundingState
    reason: str | None = None
    """Why a line was refused or is blocked."""


class BlockedStep(_View):
    step: str
    reason: str
    since_ms: int
    fix: str
    """What unblocks it."""


class LastChange(_View):
    at_ms: int
    action: str


class CustomerView(_View):
    customer_id: str
    stage: Stage
    sub_account_uid: str | None
    keys: tuple[KeyView, ...]
    funding: tuple[FundingLineView, ...]
    blocked: tuple[BlockedStep, ...]
    last_change: LastChange | None
    waiting: str | None = None
    """Why nothing is being done for the customer now, where it waits for something other than its own events
    (``None`` otherwise)."""


FIX_MANUAL = "an operator's verdict on the transfer (provisioner customer settle-transfer), after checking with KuCoin"
FIX_RETRY = "an operator retries it once the cause is fixed (provisioner customer retry, or dlq replay)"


def _stage(desired: DesiredState, record: CustomerRecord | None) -> Stage:
    if record is not None and record.closed_at_ms is not None:
        return Stage.CLOSED
    if desired.offboarded:
        return Stage.OFFBOARDING
    if record is not None and record.live_keys:
        return Stage.ACTIVE
    if record is not None and record.kyc is not None and desired.access is not None:
        if record.kyc.stage is KycStage.REJECT:
            return Stage.KYC_REJECTED
        if record.kyc.stage is not KycStage.PASS:
            return Stage.KYC_REVIEW
    if desired.access is not None and record is not None and record.sub_account is not None:
        return Stage.PROVISIONING
    if record is not None and record.sub_account is not None:
        return Stage.AWAITING_APPROVAL
    if desired.created:
        return Stage.CREATING
    return Stage.RECEIVED


AWAITING_REPUBLICATION = (
    "our state was lost and rebuilt from the exchange: funding waits until the on-call declares your re-publication "
    "of events complete (provisioner recover --republished)"
)


AWAITING_REPUBLICATION_TO_CREATE = (
    "our state was lost and rebuilt from the exchange: no sub-account is created for a customer without one until "
    "the on-call declares your re-publication of events complete (provisioner recover --republished): the "
    "customer may have been offboarded before the loss"
)


AWAITING_LEDGER = (
    "our state was lost and rebuilt from the exchange: funding waits until the Special Account's ledger lists every "
    "transfer sent before the loss (it lists one only after a lag), so the daily cap counts them"
)


def customer_view(
    customer_id: str,
    desired: DesiredState,
    record: CustomerRecord | None,
    last: LastChange | None,
    *,
    republication_declared: bool = True,
    caps_counted: bool = True,
    recovery_open: bool = False,
) -> CustomerView:
    """The view of a customer with stored events (the caller answers 404 for one without).
    ``republication_declared``: whether the upstream's re-publication after the last loss of our state was
    declared complete; while it is not, a pending line of a recovered customer says it waits for it.
    ``caps_counted``: whether the day's caps were seeded again since the ledger lists every transfer sent before
    the last loss (``FundingLedger.reseed_due``); while they are not, every customer's pending line waits.
    ``recovery_open``: our state was recovered after a loss and the re-publication is not declared yet: a created
    customer without a sub-account waits for it (``waiting``), its lines too."""
    held = (
        recovery_open
        and desired.created
        and not desired.offboarded
        and (record is None or (record.sub_account is None and record.closed_at_ms is None))
    )
    waits = held or (record is not None and record.recovered_at_ms is not None and not republication_declared)
    pending_reason = AWAITING_REPUBLICATION if waits else (None if caps_counted else AWAITING_LEDGER)
    blocked = record.blocked if record is not None else {}
    lines = []
    for line in desired.funding:
        transfer = record.transfers.get(line.key) if record is not None else None
        block = blocked.get(steps.fund(line.key))
        if transfer is not None:
            state, reason = FundingState(transfer.status.value), transfer.note
        elif block is not None:
            state, reason = FundingState.BLOCKED, block.reason
        else:
            state, reason = FundingState.PENDING, pending_reason
        lines.append(
            FundingLineView(
                line=line.key,
                event_id=line.event_id,
                currency=line.currency,
                amount=str(line.amount),
                state=state,
                reason=reason if state in (FundingState.REFUSED, FundingState.BLOCKED, FundingState.PENDING) else None,
            )
        )
    keys = tuple(
        KeyView(api_key=k.api_key, generation=k.generation, permissions=k.permissions, created_at_ms=k.created_at_ms)
        for k in (record.live_keys if record is not None else ())
    )
    return CustomerView(
        customer_id=customer_id,
        stage=_stage(desired, record),
        sub_account_uid=record.sub_account.uid if record is not None and record.sub_account is not None else None,
        keys=keys,
        funding=tuple(lines),
        blocked=tuple(
            BlockedStep(step=step, reason=b.reason, since_ms=b.at_ms, fix=FIX_MANUAL if b.manual else FIX_RETRY)
            for step, b in sorted(blocked.items())
        ),
        last_change=last,
        waiting=AWAITING_REPUBLICATION_TO_CREATE if held else None,
    )
