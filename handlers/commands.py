"""Commands the planner returns and the shell performs. Imperative names; plain frozen values.

Exchange writes (``CreateSubAccount``, ``IssueApiKey``, ``UpdateApiKey``, ``RevokeApiKey``, ``Transfer``,
``SubmitKyc``) are preceded by a recorded ``Intent``. ``Resolve*`` commands settle an intent whose outcome is
unknown from the exchange's own records; ``ConfirmTransfer`` reads the final status of a transfer the exchange
accepted; ``AuditFromExchange`` rebuilds a record from the exchange after our state was lost. The rest change
only our own record.

Every command takes keyword arguments only (``Transfer(key=..., purpose=..., ...)``): a command's fields are
mostly strings, and a positional call would swap two of them silently. ``Idle``, not a command, keeps its one
positional reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "AuditFromExchange",
    "CheckKyc",
    "CloseCustomer",
    "Command",
    "ConfirmTransfer",
    "CreateSubAccount",
    "HoldOffboarding",
    "Idle",
    "IssueApiKey",
    "ListKeys",
    "LookForTransfer",
    "ReadBalances",
    "RecheckTransfer",
    "RefuseFunding",
    "ResolveApiKey",
    "ResolveRevoke",
    "ResolveSubAccount",
    "ResolveTransfer",
    "RevokeApiKey",
    "RotateForAge",
    "SeedDailyCaps",
    "Step",
    "SubmitKyc",
    "Transfer",
    "UpdateApiKey",
]


@dataclass(frozen=True, kw_only=True)
class CreateSubAccount:
    account_name: str
    attempt: int


@dataclass(frozen=True, kw_only=True)
class ResolveSubAccount:
    """List our sub-accounts: is ``account_name`` among them?"""

    account_name: str
    attempt: int


@dataclass(frozen=True, kw_only=True)
class IssueApiKey:
    uid: str
    generation: int
    label: str
    permissions: tuple[str, ...]
    ip_whitelist: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ResolveApiKey:
    """List the sub-account's keys; delete every key labelled ``label`` whose secret we do not hold."""

    uid: str
    generation: int
    label: str


@dataclass(frozen=True, kw_only=True)
class UpdateApiKey:
    uid: str
    api_key: str
    label: str
    permissions: tuple[str, ...]
    ip_whitelist: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class RevokeApiKey:
    uid: str
    api_key: str
    reason: str
    successor: str | None = None
    """A rotated-out key: the key that took over from it, whose ``api_key.issued`` carries the new credentials; it
    is revoked only once that event has reached the upstream, where delivery is ours to see (webhooks): the grace
    is the upstream's time to switch to a key it holds."""


@dataclass(frozen=True, kw_only=True)
class ListKeys:
    """Before closing: list the sub-account's keys; any still live (ours unrecorded, or anyone's) is recorded and
    revoked before the customer is closed."""

    uid: str


@dataclass(frozen=True, kw_only=True)
class ResolveRevoke:
    """List the sub-account's keys: is ``api_key`` gone?"""

    uid: str
    api_key: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Transfer:
    key: str
    """Identity of what is moved: ``<event id>#<line>`` for funding, ``sweep:<round>`` for offboarding."""
    purpose: str
    client_oid: str
    attempt: int
    uid: str
    currency: str
    amount: Decimal
    direction: str
    sub_wallet: str
    broker_wallet: str
    evidence_first: bool = False
    """An earlier send under this clientOid may exist that our records lost (the record was rebuilt from the
    exchange): a refusal is then no proof that nothing moved."""
    since_ms: int | None = None
    """With ``evidence_first``: the earliest moment such an earlier send can have happened (the line's event and
    the sub-account existed), where the ledger is searched from."""
    operator_unsent: bool = False
    """An operator said this line's money never moved (see ``TransferIntent.operator_unsent``)."""
    earlier_send_ms: int = 0
    """When an earlier send of this line may have gone through (the ledger showed nothing of it): the result is
    searched for a second payment later, and ledger judgements look from then on."""
    twins: int = 0
    """In a recovered record: other unjudged lines of the same currency and amount (see ``TransferIntent``)."""
    refusal: str | None = None
    """The planner turns the line away (why: the per-customer cap, the attempts spent, the customer offboarded): it
    is not sent. Refused, unless it may repeat an earlier send that may have gone through (``earlier_send_ms``, no
    operator's word): then blocked for an operator."""


@dataclass(frozen=True, kw_only=True)
class ResolveTransfer:
    """Settle the pending transfer from the exchange's record of it: a re-send under the same clientOid where the
    exchange deduplicates or refuses repeats, else the Special Account's ledger; never a balance."""

    uid: str
    key: str


@dataclass(frozen=True, kw_only=True)
class LookForTransfer:
    """After a loss of our state, before an unrecorded funding line is decided (against the per-customer cap, or
    refused at offboarding): search the Special Account's ledger for a transfer of it (any attempt's clientOid);
    never send."""

    key: str
    uid: str
    currency: str
    amount: Decimal
    client_oids: tuple[str, ...]
    since_ms: int
    twins: int = 0
    ask_if_unfound: bool = False
    """Not found is not enough to send it: the line may have been refused before the loss (the recovery was not
    given what the upstream heard), so an operator decides."""
    may_eliminate: bool = True
    """Whether a transfer the ledger does not tie to the line by its clientOid may be judged the line's because no
    other line explains it: only once every line is known (the re-publication after the loss declared complete).
    Otherwise a judgement that rests on it waits for the declaration."""
    ask_if_eliminated: bool = False
    """A transfer judged the line's by elimination only is not enough to tell it completed: the declaration that
    every line is known is the on-call's word, and had the transfer been a line's the upstream has not re-published
    yet, this line would not have fit the per-customer cap (it may have been refused before the loss for it), so an
    operator decides, shown the transfer."""
    customer_cap_room: Decimal | None = None
    """After a loss, without the outcomes the upstream heard: what the per-customer cap leaves for the line beside
    what the customer is known to have been paid or may have been (``None``: no such case, or no cap; read only
    where ``ask_if_eliminated`` did not decide already). A transfer judged the line's by elimination only waits for
    an operator where every transfer the exchange shows moved to the sub-account that no line we know explains
    (other amounts too: several stragglers), the judged one included, and the line's amount do not fit in it: the
    line may have been refused before the loss for them. The shell reads the ledger."""
    day_caps_until_ms: int | None = None
    """After a loss, without the outcomes the upstream heard: the loss (ms). A transfer judged the line's by
    elimination only waits for an operator, as for ``ask_if_eliminated``, where the Special Account's daily cap of a
    day the line may have been decided on (from ``since_ms`` to the loss) could have refused it had the transfer
    been another line's: that day's use as the ledger shows it and the line's amount pass the cap. The shell reads
    the days' use; ``handlers.daily_cap.may_have_refused`` decides."""


@dataclass(frozen=True, kw_only=True)
class SeedDailyCaps:
    """After a loss of our state, before the first funding line is decided against the Special Account's daily
    cap: seed the day's caps again from its ledger, read now that it lists every transfer sent before the loss (a
    transfer in flight at the loss included, which the recovery's read may have missed). Shared by every customer:
    done once, by whichever decides a line first (seeding again keeps the larger count)."""

    due_at_ms: int
    """From when the ledger lists every transfer sent before the loss."""


@dataclass(frozen=True, kw_only=True)
class RecheckTransfer:
    """Search the ledger for a second payment of a line sent again while an earlier send may have gone through
    (a wrong clientOid setting, a ledger slower than its bound): a double payment is flagged, never silent."""

    key: str


@dataclass(frozen=True, kw_only=True)
class ConfirmTransfer:
    """Read the final status of a transfer the exchange accepted (Get Transfer History by its orderId)."""

    key: str
    order_id: str


@dataclass(frozen=True, kw_only=True)
class AuditFromExchange:
    """Our state was lost and recovered: learn from the exchange what exists for this customer (sub-account by
    its derived names, keys by label) before doing anything else."""

    reason: str
    requested_rotations: int
    """Rotations the events ask for: keys found without their secret must end up superseded (older)."""


@dataclass(frozen=True, kw_only=True)
class RefuseFunding:
    key: str
    currency: str
    amount: Decimal
    reason: str


@dataclass(frozen=True, kw_only=True)
class ReadBalances:
    uid: str


@dataclass(frozen=True, kw_only=True)
class SubmitKyc:
    uid: str
    event_id: str


@dataclass(frozen=True, kw_only=True)
class CheckKyc:
    uid: str


@dataclass(frozen=True, kw_only=True)
class RotateForAge:
    generation: int


@dataclass(frozen=True, kw_only=True)
class HoldOffboarding:
    """Offboarding cannot finish by itself (money held, or in a wallet transfers cannot reach)."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class CloseCustomer:
    reason: str
    futures_maybe: bool = False
    """An approval asked for futures and a key may have held it (one is recorded, or our record was rebuilt
    after a loss, which forgets keys revoked before it): money may sit in the futures wallet."""


@dataclass(frozen=True)
class Idle:
    """Nothing to do now. ``wake_at_ms``: when the customer needs looking at again (grace end, KYC check,
    key age, intent settling), or ``None``."""

    reason: str
    wake_at_ms: int | None = None


Command = (
    AuditFromExchange
    | ConfirmTransfer
    | RecheckTransfer
    | LookForTransfer
    | SeedDailyCaps
    | ListKeys
    | CreateSubAccount
    | ResolveSubAccount
    | IssueApiKey
    | ResolveApiKey
    | UpdateApiKey
    | RevokeApiKey
    | ResolveRevoke
    | Transfer
    | ResolveTransfer
    | RefuseFunding
    | ReadBalances
    | SubmitKyc
    | CheckKyc
    | RotateForAge
    | HoldOffboarding
    | CloseCustomer
)
Step = Command | Idle
