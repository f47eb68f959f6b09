"""What we have recorded about a customer on the exchange: the other input of the planner.

A ``CustomerRecord`` is one JSON document in Redis, written only by the lock holder. It holds facts learnt from
the exchange (sub-account, keys, transfers, KYC), our own decisions (name attempt, rotations by age, blocked
steps) and at most one ``Intent`` (``handlers.intents``): an exchange write we were about to make, or made without
learning its outcome.
Secrets are held only sealed (encrypted); nothing here is plaintext-secret.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from handlers.intents import Intent, IntentKind, IssueKeyDetails, TransferIntent, TransferPurpose
from handlers.steps import StepId

__all__ = [
    "BalanceSnapshot",
    "Blocked",
    "CustomerRecord",
    "Doubt",
    "Evidence",
    "Intent",
    "IntentKind",
    "KeyRecord",
    "KycProgress",
    "KycStage",
    "NotDone",
    "SealedSecret",
    "SubAccountRecord",
    "TransferIntent",
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
    access_in_doubt: bool = Field(False, exclude_if=lambda doubt: not doubt)
    """An update of this key's access went unsettled (blocked for an operator once its outcome stayed unknown past
    the bound, then lifted by a retry): the exchange may hold the old permissions and whitelist or the ones sent, so
    the next update is sent whatever ``permissions`` and ``ip_whitelist`` say, and settles it. Written only when
    true (a record without it reads as before the field)."""

    @property
    def live(self) -> bool:
        return self.revoked_at_ms is None


class TransferStatus(StrEnum):
    ACCEPTED = "accepted"
    """The exchange answered with an orderId; its final status (Get Transfer History) is not read yet. Counts as
    money moved for every cap until the exchange says FAILURE."""
    COMMITTED = "committed"
    """The exchange's own record says our transfer happened (see ``Evidence``)."""
    REFUSED = "refused"
    """Never sent: a funding cap, the customer's offboarding or an operator refused it."""
    UNCONFIRMED = "unconfirmed"
    """A sweep whose outcome the exchange's records cannot tell. Harmless for money (a sweep moves back what is
    there; the next round reads the balances again); reported as unconfirmed."""


class Evidence(StrEnum):
    """What proved a transfer committed: never a balance, only the exchange's record of *our* transfer."""

    HISTORY = "history"
    """Get Transfer History says SUCCESS for the orderId the exchange gave us."""
    DUPLICATE = "duplicate"
    """The exchange refused our clientOid as already used: a transfer under it exists."""
    LEDGER = "ledger"
    """The Special Account's ledger lists our transfer (by clientOid, or by an orderId only ours can explain)."""
    OPERATOR = "operator"
    """An operator checked with KuCoin and said so."""
    UPSTREAM = "upstream"
    """The upstream was told ``funding.completed`` before our state was lost, and gave that to the recovery."""


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
    attempt: int = 0
    evidence: Evidence | None = None
    check_at_ms: int = 0
    """For an ``ACCEPTED`` transfer: when to read its status next (it was PROCESSING)."""
    day: str | None = None
    """UTC day (``YYYYMMDD``) whose Special Account cap holds its reservation (funding only)."""
    sent_ms: int = 0
    """When its first send may have left (0: unknown, in records older than this field): where in the ledger its
    entry can be."""
    days: tuple[str, ...] = ()
    """Every UTC day whose Special Account cap holds a reservation for it (funding only)."""
    recheck_from_ms: int = 0
    """Set when this transfer was sent while an earlier send of the same line may also have gone through (a
    re-send, or a send after the ledger showed nothing): from when the ledger is searched again for a second one."""
    recheck_at_ms: int = 0
    """When to search (0: no search due). See ``recheck_from_ms``."""
    operator_unsent: bool = False
    """Sent again on an operator's word that the earlier send moved nothing."""
    this_send_ms: int = 0
    """When the request that got this orderId was sent: an orderId the exchange created before it (a deduplicated
    repeat) cannot be a second payment."""
    rechecks: int = 0
    extra_paid: int = 0
    """How many more times the recheck found this line paid (``recheck_transfer``: a second payment under a
    repeated clientOid; 1 where the ledger could not tell): the per-customer cap counts each (``funded``)."""
    extra_unverified: bool = False
    """``extra_paid`` is the hedge of a recheck the ledger could not answer, not payments it found listed."""

    @property
    def reserved_days(self) -> tuple[str, ...]:
        return self.days or ((self.day,) if self.day else ())

    @property
    def moved_money(self) -> bool:
        """Whether this transfer counts as money moved (for caps and for what is owed back)."""
        return self.status in (TransferStatus.ACCEPTED, TransferStatus.COMMITTED)


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


class NotDone(Record):
    """A write the exchange was found not to have done (its listing, ledger or KYC status shows nothing of it,
    or it was not sent), remembered until the next write starts: the same write (kind and token) written again
    keeps the first moment of its attempts (``Intent.first_at_ms``), so its age, and the bound on repeating it
    (``planner.retry_overdue``), count across the rounds of "read, not done, write again"."""

    kind: IntentKind
    token: str
    first_at_ms: int
    """When the first of the attempts at the write was recorded."""
    at_ms: int = 0
    """When it was found not done (0: not recorded). A write of it begun longer than the bound after that (a KYC
    review in between, say) starts afresh: its earlier attempts are not this one's (``StepContext.write_intent``)."""

    @classmethod
    def of(cls, intent: Intent, at_ms: int, *, token: str | None = None) -> NotDone:
        """``intent``'s write, found not done at ``at_ms`` (written again under ``token`` when not its own: a
        sweep's next round)."""
        return cls(
            kind=intent.kind,
            token=intent.token if token is None else token,
            first_at_ms=intent.first_at_ms,
            at_ms=at_ms,
        )


class Blocked(Record):
    """A step the exchange refused for good; it waits for an operator's replay."""

    reason: str
    at_ms: int
    manual: bool = False
    """Needs an operator's decision (e.g. a transfer whose outcome could not be read); a replay alone does not
    retry it."""
    intent: Intent | None = None
    """The write whose outcome is in doubt, kept with the block: for a ``manual`` block, the one an operator must
    decide; for a key update sent no more (``planner.update_overdue``), what was sent (a retry sends it again); for
    an issuance whose orphan keys' deletes went unanswered past the bound (``planner.retry_overdue``), the orphans
    still to delete (a retry puts it back pending: the keys are listed and the orphans deleted before a key is
    issued)."""
    reported: bool = False
    """Whether a run has raised it as a dead letter yet (a run that dies after blocking leaves it to the next)."""

    @property
    def orphans(self) -> tuple[str, ...]:
        """The orphan keys (made by the exchange, their secret never received) an issuance kept with this block still
        has to delete (``planner.retry_overdue``); empty for any other block."""
        kept = self.intent
        if kept is None or not isinstance(kept.details, IssueKeyDetails):
            return ()
        return tuple(kept.details.orphans_unsure)


class BalanceSnapshot(Record):
    """A sub-account's balances as read from the exchange: wallet → currency → (balance, available)."""

    at_ms: int
    sweep_round: int
    wallets: dict[str, dict[str, tuple[Decimal, Decimal]]]


class Doubt(NamedTuple):
    """A funding line in doubt: what it would have moved."""

    currency: str
    amount: Decimal


class CustomerRecord(Record):
    ref: str
    customer_id: str
    version: int = 0
    sub_account: SubAccountRecord | None = None
    name_attempt: int = 0
    name_version: int = 1
    """The name-secret version the customer's sub-account names derive from (``handlers.naming``), fixed when the
    record is created; records from before versions existed are version 1."""
    keys: tuple[KeyRecord, ...] = ()
    age_rotations: int = 0
    transfers: dict[str, TransferRecord] = {}
    sweep_round: int = 0
    balances: BalanceSnapshot | None = None
    kyc: KycProgress | None = None
    pending: Intent | None = None
    blocked: dict[StepId, Blocked] = {}
    retry_counts: dict[StepId, int] = {}
    """Per step, how many times an operator's replay retried it after it was blocked (new clientOids/names)."""
    closed_at_ms: int | None = None
    events_at_close: tuple[str, ...] = ()
    """Ids of the events the closing run had seen; any later one is reported as ignored."""
    audited_epoch: str | None = None
    """The state epoch in which this record was last rebuilt from the exchange (see ``worker.store.epoch``)."""
    earlier_sends: dict[str, int] = {}
    """Funding line → when an earlier send of it may have left, kept when the ledger showed nothing of it and the
    line is sent again (the send is then searched for a second payment later)."""
    keys_listed_at_ms: int = 0
    """When the sub-account's keys were last listed before closing (every key live then was recorded)."""
    unsent_by_operator: tuple[str, ...] = ()
    """ClientOids an operator said moved no money: a line sent under one is not looked for in the ledger first, and
    if the exchange still holds a transfer under it (a FAILED one), the line goes on under a new clientOid. Tied
    to the clientOid judged, so a later attempt of the line is judged afresh."""
    looked_for: tuple[str, ...] = ()
    """Funding lines of a recovered record the ledger showed unpaid (offboarding may then refuse them)."""
    awaiting_republication: tuple[str, ...] = ()
    """Funding lines of a recovered record whose search found transfers only elimination could tie to them (no
    clientOid named): decided once the re-publication after the loss is declared complete, never before."""
    adopted_at_ms: int | None = None
    """Set when ``provisioner recover --adopt`` took over a sub-account an older system created: funding lines of
    events from before then were the older system's to pay."""
    recovered_at_ms: int | None = None
    """Set when the record was rebuilt from the exchange after a loss of our state: from then on, a funding line
    not yet recorded may have been sent before the loss, and is sent evidence-first."""
    outcomes_heard: bool = False
    """Set by an audit whose recovery was given the funding outcomes the upstream heard before the loss
    (``provisioner recover --heard``): those were recorded, so a line asked for before the loss that the exchange
    shows unpaid was never decided. Without them it may have been refused (by an operator, a cap of another day,
    its attempts running out): an operator decides before it is sent."""
    redecided: dict[str, int] = {}
    """Funding line → how many times an operator's retry took back its refusal to decide it again
    (``handlers.refusals``): a later ``funding.refused`` of the line is a new outcome, with a new event id."""
    futures_granted: bool = False
    """Whether a key of ours ever held the futures permission (money may then sit in the futures wallet, which the
    broker API neither reads nor moves): set when one is issued, updated or found with it, never cleared."""
    not_done: NotDone | None = Field(None, exclude_if=lambda undone: undone is None)
    """The latest write found not done, until the next write starts (``StepContext.write_intent``). Written only
    when set: a record without it (older than the field, or between two writes) is stored as before the field."""

    @classmethod
    def new(cls, ref: str, customer_id: str, *, name_version: int = 1) -> CustomerRecord:
        return cls(ref=ref, customer_id=customer_id, name_version=name_version)

    @property
    def live_keys(self) -> tuple[KeyRecord, ...]:
        return tuple(k for k in self.keys if k.live)

    def noting_futures(self) -> CustomerRecord:
        """This record, ``futures_granted`` set if any of its keys holds the futures permission now."""
        if self.futures_granted or not any(p.lower() == "futures" for k in self.keys for p in k.permissions):
            return self
        return self.model_copy(update={"futures_granted": True})

    def key(self, generation: int) -> KeyRecord | None:
        return next((k for k in self.keys if k.generation == generation and k.live), None)

    def funded(self, currency: str) -> Decimal:
        """Funding of ``currency`` the exchange's records show committed (for the per-customer cap), each line as
        many times as it was found paid (``TransferRecord.extra_paid``)."""
        return sum(
            (
                t.amount * (1 + t.extra_paid)
                for t in self.transfers.values()
                if t.purpose is TransferPurpose.FUND and t.status is TransferStatus.COMMITTED and t.currency == currency
            ),
            Decimal(0),
        )

    def in_doubt(self) -> dict[str, Doubt]:
        """Funding lines whose money may have moved, or may yet move, without our knowing the outcome: accepted
        transfers whose final status is not read yet, the pending transfer intent, and every transfer blocked for
        an operator's verdict. Line key → currency and amount."""
        doubtful: dict[str, Doubt] = {
            t.key: Doubt(t.currency, t.amount)
            for t in self.transfers.values()
            if t.purpose is TransferPurpose.FUND and t.status is TransferStatus.ACCEPTED
        }
        intents = [self.pending] + [b.intent for b in self.blocked.values() if b.manual]
        for intent in intents:
            if intent is not None and intent.kind is IntentKind.TRANSFER:
                details = TransferIntent.of(intent)
                if details.purpose is TransferPurpose.FUND:
                    doubtful[details.key] = Doubt(details.currency, details.amount)
        return doubtful
