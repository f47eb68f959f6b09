"""Commands the planner returns and the shell performs. Imperative names; plain frozen values.

Exchange writes (``CreateSubAccount``, ``IssueApiKey``, ``UpdateApiKey``, ``RevokeApiKey``, ``Transfer``,
``SubmitKyc``) are preceded by a recorded ``Intent``. ``Resolve*`` commands settle an intent whose outcome is
unknown by *reading* the exchange. The rest change only our own record.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "CheckKyc",
    "CloseCustomer",
    "Command",
    "CreateSubAccount",
    "HoldOffboarding",
    "Idle",
    "IssueApiKey",
    "ReadBalances",
    "RefuseFunding",
    "ResolveApiKey",
    "ResolveRevoke",
    "ResolveSubAccount",
    "ResolveTransfer",
    "RevokeApiKey",
    "RotateForAge",
    "Step",
    "SubmitKyc",
    "Transfer",
    "UpdateApiKey",
]


@dataclass(frozen=True)
class CreateSubAccount:
    account_name: str
    attempt: int


@dataclass(frozen=True)
class ResolveSubAccount:
    """List our sub-accounts: is ``account_name`` among them?"""

    account_name: str
    attempt: int


@dataclass(frozen=True)
class IssueApiKey:
    uid: str
    generation: int
    label: str
    permissions: tuple[str, ...]
    ip_whitelist: tuple[str, ...]


@dataclass(frozen=True)
class ResolveApiKey:
    """List the sub-account's keys; delete every key labelled ``label`` whose secret we do not hold."""

    uid: str
    generation: int
    label: str


@dataclass(frozen=True)
class UpdateApiKey:
    uid: str
    api_key: str
    label: str
    permissions: tuple[str, ...]
    ip_whitelist: tuple[str, ...]


@dataclass(frozen=True)
class RevokeApiKey:
    uid: str
    api_key: str
    reason: str


@dataclass(frozen=True)
class ResolveRevoke:
    """List the sub-account's keys: is ``api_key`` gone?"""

    uid: str
    api_key: str
    reason: str


@dataclass(frozen=True)
class Transfer:
    key: str
    """Identity of what is moved: ``<event id>#<line>`` for funding, ``sweep:<round>`` for offboarding."""
    purpose: str
    client_oid: str
    uid: str
    currency: str
    amount: Decimal
    direction: str
    sub_wallet: str
    broker_wallet: str
    expected_before: Decimal | None
    """The sub-account's balance of ``currency`` in ``sub_wallet`` before the transfer, when our records alone
    determine it; ``None`` means the shell must read it before sending."""


@dataclass(frozen=True)
class ResolveTransfer:
    """Read the sub-account's balance and compare it with the intent's before/after figures."""

    uid: str
    key: str


@dataclass(frozen=True)
class RefuseFunding:
    key: str
    currency: str
    amount: Decimal
    reason: str


@dataclass(frozen=True)
class ReadBalances:
    uid: str


@dataclass(frozen=True)
class SubmitKyc:
    uid: str
    event_id: str


@dataclass(frozen=True)
class CheckKyc:
    uid: str


@dataclass(frozen=True)
class RotateForAge:
    generation: int


@dataclass(frozen=True)
class HoldOffboarding:
    """Offboarding cannot finish by itself (money held, or in a wallet transfers cannot reach)."""

    reason: str


@dataclass(frozen=True)
class CloseCustomer:
    reason: str


@dataclass(frozen=True)
class Idle:
    """Nothing to do now. ``wake_at_ms``: when the customer needs looking at again (grace end, KYC check,
    key age, intent settling), or ``None``."""

    reason: str
    wake_at_ms: int | None = None


Command = (
    CreateSubAccount
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
