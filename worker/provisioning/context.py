"""What a step needs: the services (exchange, store, keyrings, ledger, policy) and the customer's run state.

``StepContext`` holds the current record and is the only path to a commit: it stamps the journal entries,
threads the record version, and remembers the steps this run blocked (the run ends as a dead letter with
their reasons, for an operator to fix and replay). It also holds the current step's ``CallScope`` (whose
customer, which lane, the write's send deadline and pre-taken weight): steps call the exchange through
``ctx.exchange``, which carries it with every call.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from handlers.intents import IntentDetails
from handlers.journal import JournalAction
from handlers.planner import Policy
from handlers.records import Blocked, CustomerRecord, Intent, IntentKind, NotDone
from handlers.steps import StepId
from worker.crypto import Keyring
from worker.delivery import CredentialSealer
from worker.exchange import ExchangeClient, RateLimitedError
from worker.exchange.scope import NO_SCOPE, CallScope, Preadmission
from worker.provisioning.ledger_reads import LedgerReads
from worker.provisioning.prefetch import StatusPrefetch
from worker.store.customers import CustomerStore, JournalEntry, OutboundEvent
from worker.store.ledger import FundingLedger
from worker.store.lock import CustomerLock
from worker.store.outbound import rfc3339
from worker.store.riders import ADMIT, Rider, RiderRefused
from worker.store.transfer_facts import TransferFacts

__all__ = ["INTENT_ENDPOINTS", "Services", "StepContext", "new_passphrase"]

INTENT_ENDPOINTS = {
    IntentKind.CREATE_SUB_ACCOUNT: "add_sub_account",
    IntentKind.ISSUE_KEY: "add_api_key",
    IntentKind.UPDATE_KEY: "modify_api_key",
    IntentKind.REVOKE_KEY: "delete_api_key",
    IntentKind.TRANSFER: "transfer",
    IntentKind.SUBMIT_KYC: "submit_kyc",
}
"""The endpoint each kind of intent is about to call."""


def new_passphrase() -> str:
    """A strong random passphrase for a new sub-account key: 32 url-safe characters (KuCoin: 7–32, no spaces)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Services:
    store: CustomerStore
    exchange: ExchangeClient
    keyring: Keyring
    """Seals secrets at rest."""
    delivery: CredentialSealer
    """Encrypts credentials delivered to the upstream (``api_key.issued``) to its public key."""
    ledger: FundingLedger
    policy: Policy
    daily_caps: Mapping[str, Decimal]
    transfer_facts: TransferFacts
    """What Get Transfer History said of final transfers, shared by every judgement of the ledger."""
    clock: Callable[[], float] = time.time
    passphrase: Callable[[], str] = new_passphrase
    on_transfer: Callable[[str, str, Decimal], None] = lambda currency, direction, amount: None
    """Told of every committed transfer (currency, direction, amount): metrics."""
    send_window_s: float = 15.0
    """How long after its intent is recorded a write may still be sent: the lock's time-to-live minus the
    longest a request can take (HTTP time-outs), so the lock outlives the request."""
    admit: Callable[[str, CallScope], Rider | None] = lambda endpoint, scope: None
    """The rate limiter's question whether it admits the write about to be recorded, for ``scope``'s customer and
    lane, as a rider of the intent's commit (``worker.store.riders``; ``None``: no limiter)."""
    refusal: Callable[[str, int], Exception] = lambda endpoint, wait_ms: RateLimitedError(
        f"wait {wait_ms} ms for quota", endpoint=endpoint, retry_after_ms=wait_ms
    )
    """What the limiter's refusal of a write to ``endpoint`` (wait this many ms) raises: its ``RateLimitedError``."""
    prefetch: StatusPrefetch | None = None
    """Reads accepted transfers' statuses ahead of their confirm step (``None``: read when confirming)."""
    read_wait_s: float = 10.0
    """How long a confirm step waits for a prefetched status read already on the wire (the longest request)."""
    key_delivered_at: Callable[[str, str, int], int | None] | None = None
    """When a customer's (ref) ``api_key.issued`` of an api key reached the upstream (ms; ``None``: not yet:
    ``DeliveryStore.key_delivered_at``, which answers for the deployment: a process without webhooks of its own
    still waits while the deployment's dispatchers run); ``None``: delivery is not looked at (tests)."""
    client_oid_behaviour: str = "unknown"
    """What the exchange does with a repeated transfer clientOid: ``dedupe`` (answers the first orderId),
    ``reject`` ("clientOid duplicated"), ``accept`` (executes it again) or ``unknown``. Under the first two a
    re-send under the same clientOid is its own evidence; under the others only the ledger may decide."""

    @property
    def resend_is_evidence(self) -> bool:
        """Whether re-sending a transfer under its clientOid is safe and tells what became of the first send: the
        setting says so, and the exchange never contradicted the settings (``StateGuard.distrust``)."""
        return self.client_oid_behaviour in ("dedupe", "reject") and self.store.guard.distrust_reason() is None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)


@dataclass
class StepContext:
    services: Services
    lock: CustomerLock
    previous: CustomerRecord | None
    record: CustomerRecord
    seen_events: frozenset[str] = frozenset()
    """Ids of the events the plans of this run are based on."""
    dirty: bool = False
    """A commit saw the customer's dirty flag since ``take_dirty`` was last called."""
    commits: int = 0
    """Commits so far in this run (each renewed the lock and took the dirty flag)."""
    blocked_now: list[str] = field(default_factory=list)
    """Reasons of the steps this run blocked (for the log; ``unreported_blocks`` decides the dead letter)."""
    scope: CallScope = NO_SCOPE
    """The scope of the exchange calls made now: set by the reconciler for each step, completed by
    ``write_intent`` with the write's send deadline and pre-taken weight."""
    answers: tuple[int, ...] = ()
    """What the soft riders of the last commit answered (``worker.store.riders``)."""
    opening: bool = False
    """The record is new and not yet stored: the run's first commit stores it with ``customer.opened`` first in its
    journal (``open``: a run that would end without committing stores it alone)."""
    _ledger_reads: LedgerReads | None = field(default=None, init=False, repr=False)

    @property
    def ledger_reads(self) -> LedgerReads:
        """The Special Account's ledger as this run reads it: each range read once (``LedgerReads``), through the
        current ``scope``."""
        if self._ledger_reads is None:
            self._ledger_reads = LedgerReads(
                lambda: self.exchange.assets, self.now_ms, settled_ms=self.services.policy.transfer_settled_ms
            )
        return self._ledger_reads

    @property
    def ref(self) -> str:
        return self.record.ref

    @property
    def exchange(self) -> ExchangeClient:
        """The exchange client, every call of it under the current ``scope``."""
        return self.services.exchange.scoped(self.scope)

    def now_ms(self) -> int:
        return self.services.now_ms()

    def heartbeat(self) -> None:
        """Renew the customer lock (before every exchange call of a long step). Raises ``LockLost``."""
        self.lock.renew(take_dirty=False)

    def commit(
        self,
        record: CustomerRecord,
        *,
        journal: Sequence[tuple[JournalAction, dict[str, Any]]] = (),
        outbound: Sequence[OutboundEvent] = (),
        drop_documents: Sequence[str] = (),
        drop_all_documents: bool = False,
        close: bool = False,
        stats: dict[str, int] | None = None,
        riders: Sequence[Rider] = (),
    ) -> CustomerRecord:
        """Write ``record`` with journal entries ``(action, detail)`` and outbound events, atomically, fenced,
        extending the lock in the same script (a commit is as good as a renewal) and taking the customer's
        dirty flag into ``dirty``. The first commit of a new record journals ``customer.opened`` before them."""
        assert self.lock.token is not None
        now = self.now_ms()
        if self.opening:
            journal = [(JournalAction.CUSTOMER_OPENED, {}), *journal]
        committed = self.services.store.commit(
            self.lock.token,
            self.previous,
            record,
            journal=[JournalEntry(now, action, detail) for action, detail in journal],
            outbound=outbound,
            drop_documents=drop_documents,
            drop_all_documents=drop_all_documents,
            close=close,
            stats=stats,
            now_ms=now,
            renew_lock_ms=self.lock.ttl_ms,
            riders=riders,
        )
        self.previous = self.record = committed.record
        self.dirty = self.dirty or committed.dirty
        self.answers = committed.answers
        self.commits += 1
        self.opening = False
        return committed.record

    def open(self) -> None:
        """Store a new record that no commit of this run has stored yet (its ``customer.opened`` alone)."""
        if self.opening:
            self.commit(self.record)

    def take_dirty(self) -> bool:
        """Whether a commit since the last call saw the dirty flag (events may have arrived): read them again."""
        dirty, self.dirty = self.dirty, False
        return dirty

    def write_intent(
        self, kind: IntentKind, token: str, details: IntentDetails, *, riders: Sequence[Rider] = ()
    ) -> Intent:
        """Record an exchange write *before* sending it (write-ahead), in a commit that also asks ``riders`` (the
        day's cap of a funding line) and then whether the rate limiter admits the write (``worker.store.riders``):
        nothing is recorded unless all of them take it. The lock is renewed by that commit; the write may only be
        sent while that renewal certainly still holds. An intent still pending (a whole-replacement write being
        sent again to resolve it) is journalled as ``resent``, so the journal accounts for every write; the same
        write (kind and token) keeps its first moment (``Intent.first_at_ms``), sent again or written again after it
        was found not done (``CustomerRecord.not_done``, cleared by this commit whatever the write).

        Raises ``RateLimitedError`` (the exact wait) when the limiter says wait, ``RiderRefused`` when another rider
        refused; nothing of the commit is written then (what a rider wrote itself stays: see the riders)."""
        endpoint = INTENT_ENDPOINTS[kind]
        admit = self.services.admit(endpoint, self.scope)
        now = self.now_ms()
        earlier, undone = self.record.pending, self.record.not_done
        first = now
        if earlier is not None and earlier.kind is kind and earlier.token == token:
            first = earlier.first_at_ms
        elif undone is not None and undone.kind is kind and undone.token == token and not self._stale(undone, now):
            first = undone.first_at_ms
        intent = Intent(kind=kind, token=token, started_at_ms=now, first_at_ms=first, details=details)
        journal: list[tuple[JournalAction, dict[str, Any]]] = []
        if earlier is not None:
            # a whole-replacement write resolved by sending it again: the earlier intent's outcome is this one's
            journal.append((JournalAction.RESENT, {"kind": earlier.kind.value, "token": earlier.token}))
        journal.append(
            (JournalAction.INTENT, {"kind": kind.value, "token": token, **_public(details.model_dump(mode="json"))})
        )
        renewed = time.monotonic()
        asked = [*riders, *([admit] if admit is not None else [])]
        try:
            recorded = self.record.model_copy(update={"pending": intent, "not_done": None})
            self.commit(recorded, journal=journal, riders=asked)
        except RiderRefused as refused:
            if refused.rider == ADMIT:
                raise self.services.refusal(endpoint, refused.value) from None
            raise
        self.services.store.guard.persist()  # a Redis that loses this intent must not be taken for our state
        # the weight was taken for this write's request: it passes the limiter once without counting again
        preadmission = Preadmission(endpoint) if admit is not None else self.scope.preadmission
        self.scope = replace(self.scope, send_deadline=renewed + self.services.send_window_s, preadmission=preadmission)
        return intent

    def _stale(self, undone: NotDone, now: int) -> bool:
        """Whether the write found not done was found longer than the bound ago (``Policy.unknown_outcome_max_ms``):
        a new attempt at it then starts afresh (its earlier attempts' failures are not this one's)."""
        return undone.at_ms > 0 and now - undone.at_ms > self.services.policy.unknown_outcome_max_ms

    def settle(
        self,
        record: CustomerRecord,
        action: JournalAction,
        detail: dict[str, Any],
        *,
        outbound: Sequence[OutboundEvent] = (),
        drop_documents: Sequence[str] = (),
        drop_all_documents: bool = False,
        close: bool = False,
        stats: dict[str, int] | None = None,
        riders: Sequence[Rider] = (),
    ) -> CustomerRecord:
        """Record an outcome and clear the pending intent, in one commit (with ``riders``)."""
        return self.commit(
            record.model_copy(update={"pending": None}),
            journal=[(action, detail)],
            outbound=outbound,
            drop_documents=drop_documents,
            drop_all_documents=drop_all_documents,
            close=close,
            stats=stats,
            riders=riders,
        )

    def block(
        self,
        record: CustomerRecord,
        step: StepId,
        reason: str,
        *,
        manual: bool = False,
        keep_intent: bool = False,
        outbound: Sequence[OutboundEvent] = (),
    ) -> CustomerRecord:
        """Mark ``step`` blocked (the exchange refused it for good) and clear the intent; the run will end as
        a dead letter carrying ``reason``. A ``manual`` block keeps the pending intent for the operator, and so does
        one with ``keep_intent`` (a write in doubt that a retry sends again: kept as a record of what was sent)."""
        kept = record.pending if manual or keep_intent else None
        blocked = {**record.blocked, step: Blocked(reason=reason, at_ms=self.now_ms(), manual=manual, intent=kept)}
        self.blocked_now.append(f"{step}: {reason}")
        return self.settle(
            record.model_copy(update={"blocked": blocked}),
            JournalAction.BLOCKED,
            {"step": step, "reason": reason, "manual": manual},
            outbound=outbound,
        )


def _public(details: dict[str, Any]) -> dict[str, Any]:
    """Intent details fit for the journal (they never hold secrets; this drops anything secret-named anyway)."""
    return {k: v for k, v in details.items() if "secret" not in k and "passphrase" not in k}


def utc_iso(ms: int) -> str:
    """The one timestamp format of outbound events (``worker.store.outbound.rfc3339``)."""
    return rfc3339(ms)
