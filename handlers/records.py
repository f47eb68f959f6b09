"""What we have recorded about a customer on the exchange: the other input of the planner.

A ``CustomerRecord`` is one JSON document in Redis, written only by the lock holder. It holds facts learnt from
the exchange (sub-account, keys, transfers, KYC), our own decisions (name attempt, rotations by age, blocked
steps) and at most one ``Intent``: an exchange write we were about to make, or made without learning its outcome.
Secrets are held only sealed (encrypted); nothing here is plaintext-secret.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "BalanceSnapshot",
    "Blocked",
    "CustomerRecord",
    "Intent",
    "IntentKind",
    "KeyRecord",
    "KycProgress",
    "KycStage",
    "SealedSecret",
    "SubAccountRecord",
    "TransferPurpose",
    "TransferRecord",
    "TransferStatus",
]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SubAccountRecord(Record):
    uid: str
    account_name: str
    created_at_ms: int


class SealedSecret(Record):
    """A key's secret and passphrase, encrypted: ``key_id`` names the encryption key, ``token`` the ciphertext."""

    key_id: str
    token: str


class KeyRecord(Record):
    generation: int
    label: str
    api_key: str
    permissions: tuple[str, ...]
    ip_whitelist: tuple[str, ...]
    created_at_ms: int
    sealed: SealedSecret | None
    revoked_at_ms: int | None = None
    revoke_reason: str | None = None

    @property
    def live(self) -> bool:
        return self.revoked_at_ms is None


class TransferPurpose(StrEnum):
    FUND = "fund"
    SWEEP = "sweep"


class TransferStatus(StrEnum):
    COMMITTED = "committed"
    REFUSED = "refused"
    """Never sent: a funding cap refused it."""


class TransferRecord(Record):
    key: str
    purpose: TransferPurpose
    client_oid: str | None
    currency: str
    amount: Decimal
    sub_wallet: str
    status: TransferStatus
    order_id: str | None = None
    note: str | None = None
    at_ms: int


class IntentKind(StrEnum):
    CREATE_SUB_ACCOUNT = "create_sub_account"
    ISSUE_KEY = "issue_key"
    UPDATE_KEY = "update_key"
    REVOKE_KEY = "revoke_key"
    TRANSFER = "transfer"
    SUBMIT_KYC = "submit_kyc"


class Intent(Record):
    """An exchange write recorded *before* it is sent. While it stands, its outcome is unknown."""

    kind: IntentKind
    token: str
    """The write's deterministic identity: account name, key label, api key or clientOid."""
    started_at_ms: int
    details: dict[str, Any] = {}


class KycStage(StrEnum):
    SUBMITTED = "SUBMITTED"
    PROCESS = "PROCESS"
    PASS = "PASS"  # noqa: S105 - a KYC verdict
    REJECT = "REJECT"


class KycProgress(Record):
    event_id: str
    stage: KycStage
    reason: str | None = None
    next_check_ms: int = 0


class Blocked(Record):
    """A step the exchange refused for good; it waits for an operator's replay."""

    reason: str
    at_ms: int
    manual: bool = False
    """Needs an operator's decision (e.g. a transfer whose outcome could not be read); a replay alone does not
    retry it."""
    intent: Intent | None = None
    """The write whose outcome an operator must decide, kept with the block."""
    reported: bool = False
    """Whether a run has raised it as a dead letter yet (a run that dies after blocking leaves it to the next)."""


class BalanceSnapshot(Record):
    """A sub-account's balances as read from the exchange: wallet → currency → (balance, available)."""

    at_ms: int
    sweep_round: int
    wallets: dict[str, dict[str, tuple[Decimal, Decimal]]]


class CustomerRecord(Record):
    ref: str
    customer_id: str
    version: int = 0
    sub_account: SubAccountRecord | None = None
    name_attempt: int = 0
    keys: tuple[KeyRecord, ...] = ()
    age_rotations: int = 0
    transfers: dict[str, TransferRecord] = {}
    sweep_round: int = 0
    balances: BalanceSnapshot | None = None
    kyc: KycProgress | None = None
    pending: Intent | None = None
    blocked: dict[str, Blocked] = {}
    retry_counts: dict[str, int] = {}
    """Per step, how many times an operator's replay retried it after it was blocked (new clientOids/names)."""
    closed_at_ms: int | None = None
    events_at_close: tuple[str, ...] = ()
    """Ids of the events the closing run had seen; any later one is reported as ignored."""

    @classmethod
    def new(cls, ref: str, customer_id: str) -> CustomerRecord:
        return cls(ref=ref, customer_id=customer_id)

    @property
    def live_keys(self) -> tuple[KeyRecord, ...]:
        return tuple(k for k in self.keys if k.live)

    def key(self, generation: int) -> KeyRecord | None:
        return next((k for k in self.keys if k.generation == generation and k.live), None)

    def committed_into(self, currency: str, wallet: str) -> Decimal:
        """Net amount our committed transfers moved into ``wallet``/``currency`` of the sub-account."""
        total = Decimal(0)
        for t in self.transfers.values():
            if t.status is TransferStatus.COMMITTED and t.currency == currency and t.sub_wallet == wallet:
                total += t.amount if t.purpose is TransferPurpose.FUND else -t.amount
        return total

    def funded(self, currency: str) -> Decimal:
        """Total committed funding of ``currency`` (for the per-customer cap)."""
        return sum(
            (
                t.amount
                for t in self.transfers.values()
                if t.purpose is TransferPurpose.FUND and t.status is TransferStatus.COMMITTED and t.currency == currency
            ),
            Decimal(0),
        )
