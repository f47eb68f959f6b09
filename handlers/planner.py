"""The planner: from desired state and recorded state to the next step. Pure; no I/O, clock or randomness.

``plan`` returns one step, not a list, on purpose: every exchange write changes the record (a uid, an api key,
an order id), and the step after it depends on that outcome. The shell performs the step, records what
happened, and plans again until ``Idle``. Because the planner looks only at the two states (level-triggered,
like a controller), a duplicate event, a re-ordered event, a crash or a replay can only lead to the same
steps again, never to different ones.

Order of concerns: a record our lost state left unaudited is first rebuilt from the exchange; then an unsettled
intent (settled from the exchange's records); then the sub-account; then offboarding (which dominates
everything and waits only for money); then proxy KYC; then funding; then keys (issue, align, revoke superseded
keys, rotate by age); then the final status of accepted transfers.

A blocked step blocks only what depends on it: a blocked issuance does not hold back revoking rotated-out keys
or aligning live ones; a blocked funding line holds back only later lines of its currency whose cap it could
use; offboarding revokes, sweeps and closes whatever else is blocked, waiting only for money in doubt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from handlers import steps
from handlers.commands import (
    AuditFromExchange,
    CheckKyc,
    CloseCustomer,
    ConfirmTransfer,
    CreateSubAccount,
    HoldOffboarding,
    Idle,
    IssueApiKey,
    ListKeys,
    LookForTransfer,
    ReadBalances,
    RecheckTransfer,
    RefuseFunding,
    ResolveApiKey,
    ResolveRevoke,
    ResolveSubAccount,
    ResolveTransfer,
    RevokeApiKey,
    RotateForAge,
    SeedDailyCaps,
    Step,
    SubmitKyc,
    Transfer,
    UpdateApiKey,
)
from handlers.daily_cap import LEDGER_MAX_WINDOW_MS, LEDGER_SKEW_MS
from handlers.desired import DesiredState, FundingInstruction
from handlers.intents import (
    CreateSubAccountDetails,
    IssueKeyDetails,
    RevokeKeyDetails,
    SubmitKycDetails,
    TransferIntent,
    UpdateKeyDetails,
)
from handlers.naming import Naming
from handlers.records import (
    CustomerRecord,
    Evidence,
    Intent,
    IntentKind,
    KeyRecord,
    KycStage,
    SubAccountRecord,
    TransferPurpose,
    TransferStatus,
)
from handlers.refusals import may_have_been_taken_back

__all__ = [
    "AWAITING_LEDGER",
    "CapDecision",
    "Policy",
    "cap_decision",
    "plan",
    "repeat_overdue",
    "retry_overdue",
    "update_overdue",
]

WALLETS = ("MAIN", "TRADE")
OFFBOARDED_REASON = "the customer was offboarded before this line was funded"
UPSTREAM_SKEW_MS = 5 * 60_000
"""How far the upstream's ``occurred_at`` clock may be off ours."""
MAX_ATTEMPTS = 10
"""The most attempts (clientOids) a funding line may use: a line whose attempts all failed is refused, so a search
after a loss of our state (whose retry counts were lost) covers every clientOid the line can have been paid under."""
AWAITING_LEDGER = (
    "funding waits until the Special Account's ledger lists every transfer sent before the state loss (its lag), "
    "for the day's caps to count them"
)
ADOPTED_REASON = (
    "the sub-account was adopted from a previous system: lines asked for before the adoption were that system's"
)


@dataclass(frozen=True)
class Policy:
    """The deployment's rules, as plain values (built once from the settings)."""

    naming: Naming
    funding_caps: Mapping[str, Decimal]
    broker_wallet: str = "MAIN"
    sub_wallet: str = "TRADE"
    key_max_age_ms: int = 90 * 86_400_000
    rotation_grace_ms: int = 3_600_000
    proxy_kyc: bool = False
    kyc_poll_ms: int = 60_000
    resolve_delay_ms: int = 30_000
    """How long after an intent started before we read the exchange to settle it: longer than a request can
    stay in flight, so a slow request cannot land after we looked."""
    transfer_resolve_delay_ms: int | None = None
    """The same for a transfer; longer where the ledger decides (its listing may lag). ``None``: as above."""
    transfer_poll_ms: int = 2_000
    """How often the status of an accepted transfer still PROCESSING is read again."""
    max_live_keys: int = 5
    """The exchange's cap on live keys per sub-account: issuing beyond it revokes the oldest rotated-out key first."""
    listing_lag_ms: int = 0
    """How long the exchange may take to list what it just created (sub-accounts, keys)."""
    unknown_outcome_max_ms: int = 86_400_000
    """How long a write settled by sending it again (a key's update; a transfer re-sent under its clientOid where
    that is evidence), or written again whenever it is found not done (``retry_overdue``), may go on failing, from
    its first send: then it is sent no more (``repeat_overdue``)."""

    @property
    def transfer_settled_ms(self) -> int:
        """How long after a send its transfer is surely settled and listed by the ledger."""
        return self.transfer_resolve_delay_ms or self.resolve_delay_ms


@dataclass
class _Plan:
    """One planning pass for a customer with a sub-account: its inputs, and what it gathers on the way (when to
    look again, what waits)."""

    desired: DesiredState
    record: CustomerRecord
    sub: SubAccountRecord
    now_ms: int
    policy: Policy
    republished_at_ms: int | None = None
    stamps_kept: bool = False
    caps_due_at_ms: int | None = None
    deliveries: Mapping[str, int | None] = field(default_factory=dict)
    wakes: list[int] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)

    def wake(self, at_ms: int) -> None:
        self.wakes.append(at_ms)

    def idle(self, reason: str | None = None) -> Idle:
        text = reason or ("; ".join(self.waiting) if self.waiting else "converged")
        return Idle(text, min(self.wakes) if self.wakes else None)


def plan(
    desired: DesiredState,
    record: CustomerRecord,
    *,
    now_ms: int,
    policy: Policy,
    audit_epoch: str | None = None,
    republished_at_ms: int | None = None,
    stamps_kept: bool = False,
    recovery_open: bool = False,
    caps_due_at_ms: int | None = None,
    deliveries: Mapping[str, int | None] | None = None,
) -> Step:
    """The next step for this customer. See the module docstring for the order of concerns.

    ``audit_epoch``: the state epoch when our state was recovered after a loss (``None`` while it never was); a
    record not yet audited in it is first rebuilt from the exchange. ``republished_at_ms``: when the on-call
    declared the upstream's re-publication after the last recovery complete (``None`` while it is not);
    ``stamps_kept``: the on-call declared too that the re-publication kept every event's ``occurred_at`` (a line
    stamped after the loss is then a new one). ``caps_due_at_ms``: after a loss of our state, from when the
    Special Account's ledger lists every transfer sent before it, while the day's caps were not seeded again from
    a ledger read made since (``None`` otherwise): no funding line is sent against the daily cap until they are.
    ``recovery_open``: our state was recovered after a loss and the re-publication is not declared complete yet: no
    sub-account is created meanwhile (the customer may have been closed before the loss without one).
    ``deliveries``: for keys that took over from a rotated-out one, when their ``api_key.issued`` reached the
    upstream (webhooks; ``None``: not yet): the key they took over from is revoked only a grace after that
    delivery (looked at again in ``DELIVERY_POLL_MS`` while there is none); a key not named is revoked as planned.
    """
    if record.closed_at_ms is not None:
        if record.sub_account is None:
            return Idle("closed")
        if record.recovered_at_ms is None:
            # a line sent while an earlier send of it may have gone through is still searched for a second payment
            # (an offboarding does not wait for it): a double payment is flagged whenever the customer closed
            p = _Plan(desired, record, record.sub_account, now_ms, policy, republished_at_ms, stamps_kept)
            return _confirm(p) or p.idle("closed")
        if record.pending is not None:
            return _settle(record.pending, now_ms, policy, caps_due_at_ms)
        return _late_lines(_Plan(desired, record, record.sub_account, now_ms, policy, republished_at_ms, stamps_kept))
    if audit_epoch is not None and record.audited_epoch != audit_epoch:
        return AuditFromExchange(
            reason="our state was recovered after a loss: read what the exchange has first",
            requested_rotations=desired.requested_rotations,
        )
    if record.pending is not None:
        return _settle(record.pending, now_ms, policy, caps_due_at_ms)
    sub = record.sub_account
    if sub is None:
        if desired.offboarded:
            # no line can have moved without a sub-account to receive it: each is told refused before the close
            for line in desired.funding:
                if line.key not in record.transfers:
                    return RefuseFunding(
                        key=line.key, currency=line.currency, amount=line.amount, reason=OFFBOARDED_REASON
                    )
            before = "created" if not desired.created else "its sub-account was created"
            return CloseCustomer(reason=f"offboarded before {before}")
        if not desired.created:
            return Idle("waiting for customer.created")
        if recovery_open:
            # our state was lost: this customer may have been offboarded (closed) before the loss without ever
            # getting a sub-account; only the complete re-publication (its offboarding among it) can say
            return Idle("waiting for the re-publication after the loss to be declared before creating a sub-account")
        if steps.SUBACCOUNT in record.blocked:
            return Idle("sub-account creation is blocked")
        name = policy.naming.account_name(record.customer_id, record.name_attempt, version=record.name_version)
        return CreateSubAccount(account_name=name, attempt=record.name_attempt)
    planning = _Plan(
        desired, record, sub, now_ms, policy, republished_at_ms, stamps_kept, caps_due_at_ms, deliveries or {}
    )
    if desired.offboarded:
        return _offboard(planning)
    if desired.access is None:
        return Idle("waiting for customer.kyc_approved")
    gate = _kyc(planning)
    if isinstance(gate, Idle):
        # the review holds back what grants access (a new key, funding); what withdraws or aligns access already
        # given (a rotated-out key's revocation, the newest whitelist) and telling a transfer's outcome go on
        if gate.wake_at_ms is not None:
            planning.wake(gate.wake_at_ms)
        return _keys(planning, grant=False) or _confirm(planning) or planning.idle(gate.reason)
    return gate or _funding(planning) or _keys(planning) or _confirm(planning) or planning.idle()


def _settle(intent: Intent, now_ms: int, policy: Policy, caps_due_at_ms: int | None = None) -> Step:
    """An intent stands: its write may or may not have happened. Read the exchange, once it has settled. A funding
    transfer may be re-sent to settle it, on today's cap: after a loss, only once the caps count what the ledger
    lists (``caps_due_at_ms``, as for a line sent anew: ``_seed_caps_first``)."""
    delay = policy.resolve_delay_ms
    if intent.kind is IntentKind.TRANSFER and policy.transfer_resolve_delay_ms is not None:
        delay = policy.transfer_resolve_delay_ms
    # When the exchange answered "no", nothing of ours can still be in flight for it: look once its listing has
    # caught up (a "name taken" may be our own sub-account, not listed yet).
    d = intent.details
    refused = isinstance(d, CreateSubAccountDetails | RevokeKeyDetails) and d.refused
    ready_at = intent.started_at_ms + (policy.listing_lag_ms if refused else delay)
    if now_ms < ready_at:
        return Idle(f"waiting for {intent.kind} to settle before reading the exchange", ready_at)
    match d:
        case CreateSubAccountDetails():
            return ResolveSubAccount(account_name=intent.token, attempt=d.attempt)
        case IssueKeyDetails():
            return ResolveApiKey(uid=d.uid, generation=d.generation, label=intent.token)
        case UpdateKeyDetails():  # a whole-replacement write: repeating it is the resolution
            return UpdateApiKey(
                uid=d.uid,
                api_key=intent.token,
                label=d.label,
                permissions=tuple(d.permissions),
                ip_whitelist=tuple(d.ip_whitelist),
            )
        case RevokeKeyDetails():
            return ResolveRevoke(uid=d.uid, api_key=intent.token, reason=d.reason)
        case TransferIntent():
            if caps_due_at_ms is not None and d.purpose is TransferPurpose.FUND:
                if now_ms < caps_due_at_ms:
                    return Idle(AWAITING_LEDGER, caps_due_at_ms)
                return SeedDailyCaps(due_at_ms=caps_due_at_ms)
            return ResolveTransfer(uid=d.uid, key=d.key)
        case SubmitKycDetails():
            return CheckKyc(uid=d.uid)


def repeat_overdue(intent: Intent, now_ms: int, policy: Policy) -> bool:
    """Whether ``intent`` has stood outcome-unknown for ``policy.unknown_outcome_max_ms`` since the write was first
    recorded (``Intent.first_at_ms``). A write settled by sending it again is sent no more then: a key's update is
    blocked for an operator (``update_overdue``), a transfer is judged from the Special Account's ledger
    (``money_steps.resolve_transfer``); one found not done is not written again (``retry_overdue``). Pure."""
    return now_ms - intent.first_at_ms >= policy.unknown_outcome_max_ms


def update_overdue(intent: Intent, now_ms: int, policy: Policy) -> tuple[steps.StepId, str] | None:
    """A key's update (Modify SubAccount API, settled by sending it again) whose every send went unanswered for
    longer than ``policy.unknown_outcome_max_ms`` (``repeat_overdue``): the step to block, and why. ``None`` for
    another intent, or one not overdue. Pure."""
    if not isinstance(intent.details, UpdateKeyDetails) or not repeat_overdue(intent, now_ms, policy):
        return None
    reason = (
        f"Modify SubAccount API (the IP whitelist and permissions of key {intent.token}): every send for "
        f"{_span(now_ms - intent.first_at_ms)} ended with its outcome unknown (no answer, or none that could be "
        "read; PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS): the key holds its old access or the new one; once the "
        "exchange answers again, `provisioner customer retry` sends it again"
    )
    return steps.update(intent.token), reason


def retry_overdue(intent: Intent, now_ms: int, policy: Policy) -> tuple[steps.StepId, str] | None:
    """A write settled by reading and written again when found not done (a create, an issuance, a revocation, a
    KYC submission, a funding transfer; a sweep left unconfirmed, swept again in its next round), whose attempts
    since its first (``Intent.first_at_ms``, kept across those rounds: ``CustomerRecord.not_done``) all failed for
    ``policy.unknown_outcome_max_ms`` (``repeat_overdue``): the step to block instead of writing it again, and why.
    An issuance whose orphan keys' deletes go unanswered is overdue the same way (the reason names the deletes).
    ``None`` before the bound, and for a key update (bounded otherwise: ``update_overdue``). Pure."""
    if not repeat_overdue(intent, now_ms, policy):
        return None
    span = _span(now_ms - intent.first_at_ms)
    retry = "once the exchange answers again, `provisioner customer retry` writes it again"
    d = intent.details
    match d:
        case CreateSubAccountDetails():
            step, write = steps.SUBACCOUNT, f"Add SubAccount (sub-account {intent.token})"
        case IssueKeyDetails() if d.orphans_unsure:
            orphans = ", ".join(d.orphans_unsure)
            reason = (
                f"Delete SubAccount API (keys {orphans} of sub-account {d.uid}, labelled {intent.token}, whose secret "
                f"was never received): no delete was answered for {span} (PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS), "
                "so no key is issued; once the exchange answers again, `provisioner customer retry` deletes them, "
                "then issues the key"
            )
            return steps.issue(d.generation), reason
        case IssueKeyDetails():
            step = steps.issue(d.generation)
            write = f"Add SubAccount API (the key labelled {intent.token}, sub-account {d.uid})"
        case RevokeKeyDetails():
            step, write = steps.revoke(intent.token), f"Delete SubAccount API (key {intent.token})"
        case SubmitKycDetails():
            step, write = steps.KYC, f"the proxy KYC submission (documents of {intent.token})"
        case TransferIntent() if d.purpose is TransferPurpose.FUND:
            reason = (
                f"transfer {intent.token} of line {d.key} ({d.amount} {d.currency}): every attempt for {span} went "
                "unanswered (no answer, or none that could be read) and the Special Account's ledger shows none of "
                "them (PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS) — its silence is no proof that none moved money: "
                "counted in doubt; check with KuCoin, then decide with `provisioner customer settle-transfer`"
            )
            return steps.fund(d.key), reason
        case TransferIntent():
            reason = (
                f"the sweep of {d.amount} {d.currency} from the sub-account's {d.sub_wallet} wallet (clientOid "
                f"{intent.token}): every round for {span} went unanswered (no answer, or none that could be read) "
                "and the ledger confirmed none (PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS); once the exchange answers "
                "again, `provisioner customer retry` reads the balances and sweeps again"
            )
            return steps.SWEEP, reason
        case _:
            return None
    reason = (
        f"{write}: every attempt for {span} failed (no answer, or none that could be read) and left nothing done "
        f"(PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS); {retry}"
    )
    return step, reason


def _span(ms: int) -> str:
    """A duration for people: ``1 h 5 min``, ``12 min``."""
    hours, minutes = divmod(max(ms, 0) // 60_000, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _offboard(p: _Plan) -> Step:
    """Revoke every key at once, tell the upstream which lines will never be funded, let accepted transfers
    settle, move every available balance back, then close. Only money holds the close back: a blocked revocation
    does not stop the sweep (nor does a blocked sweep stop revocations), but the customer is closed only once no
    key is live, no transfer is in doubt and the balances read after the last revocation are back (a line's search
    for a second payment still to run goes on after the close: ``plan``)."""
    desired, record, sub, policy = p.desired, p.record, p.sub, p.policy
    live = record.live_keys
    for live_key in live:
        if steps.revoke(live_key.api_key) not in record.blocked:
            return RevokeApiKey(uid=sub.uid, api_key=live_key.api_key, reason="offboarded")
    in_doubt = {k for k in record.in_doubt() if k not in record.transfers}
    for line in desired.funding:
        if _refusal_to_look_for(line, p):
            # refused, but a retry may have paid it since: was it? (found, it is told completed; else it stands)
            return _look_before_offboarding(p, line, "offboarding")
        if line.key not in record.transfers and line.key not in in_doubt:
            if _may_have_been_paid(line, p) and not _looked(line, record, policy):
                # our record of this line may have been lost with our state: was it paid? (never sent now), once
                # what was sent before the loss shows on the exchange
                return _look_before_offboarding(p, line, "offboarding")
            return _refuse(p, line, OFFBOARDED_REASON)
    confirm = _confirm(p)
    if confirm is not None:
        return confirm
    accepted = [t for t in record.transfers.values() if t.status is TransferStatus.ACCEPTED]
    if accepted:
        return p.idle("waiting for accepted transfers to settle before moving balances back")
    if steps.SWEEP not in record.blocked:
        snapshot = record.balances
        last_revocation = max((k.revoked_at_ms or 0 for k in record.keys), default=0)
        if snapshot is None or snapshot.sweep_round != record.sweep_round or snapshot.at_ms < last_revocation:
            return ReadBalances(uid=sub.uid)
        for wallet in WALLETS:
            for currency, (_balance, available) in sorted(snapshot.wallets.get(wallet, {}).items()):
                if available > 0:
                    attempt = record.retry_counts.get(steps.SWEEP, 0)
                    return Transfer(
                        key=f"sweep:{record.sweep_round}",
                        purpose=TransferPurpose.SWEEP,
                        client_oid=policy.naming.sweep_client_oid(record.ref, record.sweep_round, attempt),
                        attempt=attempt,
                        uid=sub.uid,
                        currency=currency,
                        amount=available,
                        direction="IN",
                        sub_wallet=wallet,
                        broker_wallet=policy.broker_wallet,
                    )
        left = {
            f"{wallet}:{currency}": balance
            for wallet, rows in snapshot.wallets.items()
            for currency, (balance, _) in rows.items()
            if balance > 0
        }
        if left:
            # Held in open orders, or in wallets the ND transfer endpoint cannot move (HF, margin): closing now
            # would leave money behind. A human finishes it, then replays.
            listed = ", ".join(f"{k} {v}" for k, v in sorted(left.items()))
            return HoldOffboarding(reason=f"funds the transfer endpoint cannot move back remain: {listed}")
    if live:
        return p.idle("offboarding: key revocation is blocked")
    last_revocation = max((k.revoked_at_ms or 0 for k in record.keys), default=0)
    if record.keys and record.keys_listed_at_ms < last_revocation + policy.listing_lag_ms:
        # a key the exchange created but had not listed yet (a lost answer) must not outlive the customer
        listed_at = last_revocation + policy.listing_lag_ms
        if p.now_ms < listed_at:
            p.wake(listed_at)
            return p.idle("offboarding: waiting for the exchange to list every key before closing")
        return ListKeys(uid=sub.uid)
    if in_doubt:
        return p.idle(f"offboarding: waiting for an operator's verdict on {', '.join(sorted(in_doubt))}")
    if steps.SWEEP in record.blocked:
        return p.idle("offboarding: moving balances back is blocked")
    recorded = {k.api_key for k in record.keys}
    orphaned = sorted(
        key
        for b in record.blocked.values()
        for key in b.orphans
        if key not in recorded  # found by the offboarding's own listing: revoked above like any other key
    )
    if orphaned:
        # keys the exchange made whose secret we never held, their deletes unanswered past the bound: the close
        # would leave them live on the sub-account with nothing looking at them again
        return p.idle(f"offboarding: keys {', '.join(orphaned)} must be deleted first (`provisioner customer retry`)")
    futures_maybe = desired.futures_asked and (bool(record.keys) or record.recovered_at_ms is not None)
    return CloseCustomer(reason="offboarded", futures_maybe=futures_maybe)


def _late_lines(p: _Plan) -> Step:
    """A customer closed after a loss of our state: events that come back after the close may carry lines paid
    before the loss. Each is looked for in the ledger (never sent): found, it completes; not found, it is refused
    (the customer was offboarded before it was funded). Accepted transfers found are confirmed."""
    desired, record, policy = p.desired, p.record, p.policy
    in_doubt = record.in_doubt()
    for line in desired.funding:
        if _refusal_to_look_for(line, p):
            return _look_before_offboarding(p, line, "closed")
        if line.key in record.transfers or line.key in in_doubt:
            continue
        if not _may_have_been_paid(line, p) or _looked(line, record, policy):
            return _refuse(p, line, OFFBOARDED_REASON)
        return _look_before_offboarding(p, line, "closed")
    return _confirm(p) or p.idle("closed")


def _kyc(p: _Plan) -> Step | None:
    """Proxy KYC, when enabled and documents came with the approval: submit, follow, gate keys and funding. Where
    it is not enabled, documents another process submitted (a rollout switching it on or off: settings differ for
    minutes) are still followed and still gate keys and funding: the customer's record decides, the setting only
    whether to submit."""
    desired, record, sub, now_ms, policy = p.desired, p.record, p.sub, p.now_ms, p.policy
    if desired.kyc_documents_event is None:
        return None
    progress = record.kyc
    if not policy.proxy_kyc and (progress is None or progress.event_id != desired.kyc_documents_event):
        return None
    if progress is None or (progress.stage is KycStage.REJECT and progress.event_id != desired.kyc_documents_event):
        if steps.KYC in record.blocked:
            return Idle("KYC submission is blocked")
        return SubmitKyc(uid=sub.uid, event_id=desired.kyc_documents_event)
    if progress.stage in (KycStage.SUBMITTED, KycStage.PROCESS):
        if now_ms >= progress.next_check_ms:
            return CheckKyc(uid=sub.uid)
        return Idle("waiting for the KYC review", progress.next_check_ms)
    if progress.stage is KycStage.REJECT:
        return Idle("KYC rejected")
    return None


class CapDecision(StrEnum):
    """What the per-customer cap says of a funding line: send it, refuse it for good, or wait for verdicts."""

    SEND = "send"
    REFUSE = "refuse"
    WAIT = "wait"


def cap_decision(*, amount: Decimal, moved: Decimal, in_doubt: Decimal, cap: Decimal | None) -> CapDecision:
    """Decide a funding line against the per-customer cap, counting every line that may have moved money.

    ``moved``: committed funding of the currency; ``in_doubt``: lines whose transfer may or may not have happened
    or may still fail (accepted and not yet confirmed, pending, or blocked for an operator). Refuse only when the
    line cannot fit whatever the verdicts are; wait when it fits only if the doubtful lines turn out unsent; so no
    sequence of verdicts exceeds the cap.
    """
    if cap is None or moved + amount > cap:
        return CapDecision.REFUSE
    if moved + in_doubt + amount > cap:
        return CapDecision.WAIT
    return CapDecision.SEND


def _earliest_send(line: FundingInstruction, sub: SubAccountRecord) -> int:
    """The earliest a transfer of ``line`` can have been sent: after its event occurred (the upstream's clock, give
    or take ``UPSTREAM_SKEW_MS``) and after the sub-account existed."""
    return max(line.occurred_ms, sub.created_at_ms) - UPSTREAM_SKEW_MS


def _twins(line: FundingInstruction, p: _Plan) -> int:
    """Other lines of the same currency and amount whose transfer our (recovered) record does not know yet and
    that may have been paid before the loss (a line known new was never sent, or its intent would be recorded)."""
    return sum(
        1
        for other in p.desired.funding
        if other.key != line.key
        and _unknown_to_record(other, p)
        and other.currency == line.currency
        and other.amount == line.amount
        and _maybe_lost(other, p)
    )


def _unknown_to_record(line: FundingInstruction, p: _Plan) -> bool:
    """Whether our record does not know yet what became of ``line``: no transfer recorded, or a refusal in doubt
    not looked for yet (a retry may have paid it)."""
    if _refusal_in_doubt(line, p.record):
        return not _looked(line, p.record, p.policy)
    return line.key not in p.record.transfers


def _attempts_spent_reason(attempts: int) -> str:
    return (
        f"sent {attempts} times and none moved money (the most clientOids a line may use): publish a new top-up to "
        "try again"
    )


def _heard_shortfall(desired: DesiredState, record: CustomerRecord, currency: str) -> Decimal:
    """How much more than recorded the lines recorded from what the upstream heard (``Evidence.UPSTREAM``) may
    have moved in ``currency``: a heard amount or currency that differs from the line's is a claim, and the cap
    counts the larger of the two."""
    short = Decimal(0)
    for line in desired.funding:
        held = record.transfers.get(line.key)
        if held is None or held.evidence is not Evidence.UPSTREAM or line.currency != currency:
            continue
        recorded = held.amount if held.currency == currency else Decimal(0)
        short += max(Decimal(0), line.amount - recorded)
    return short


def _republished(p: _Plan) -> bool:
    """Whether the on-call declared the re-publication after the record's last recovery complete."""
    recovered, declared = p.record.recovered_at_ms, p.republished_at_ms
    return recovered is not None and declared is not None and declared >= recovered


def _maybe_lost(line: FundingInstruction, p: _Plan) -> bool:
    """Whether our record of ``line`` may have been lost with our state. Until the on-call declares the
    upstream's re-publication complete every unrecorded line of a recovered record may be an old one (its
    ``occurred_at`` is the upstream's word: a re-publication may re-stamp it, and a line paid before the loss but
    not re-published yet is unknown to the caps); afterwards, a line whose event occurred after the declaration
    (by the upstream's clock, allowed ``UPSTREAM_SKEW_MS`` ahead of ours) is new."""
    if p.record.recovered_at_ms is None:
        return False
    if not _republished(p):
        return True
    if p.stamps_kept and _surely_after_loss(line, p.record):
        return False  # the re-publication kept the events' own times: asked for after the loss, so never sent before
    return line.occurred_ms < (p.republished_at_ms or 0) + UPSTREAM_SKEW_MS


def _new_by_kept_stamps(line: FundingInstruction, p: _Plan) -> bool:
    """Whether ``line`` counts as new only because the on-call declared the re-publication kept the events' times."""
    return (
        p.record.recovered_at_ms is not None
        and p.stamps_kept
        and _surely_after_loss(line, p.record)
        and line.occurred_ms < (p.republished_at_ms or 0) + UPSTREAM_SKEW_MS
    )


def _may_have_been_paid(line: FundingInstruction, p: _Plan) -> bool:
    """Whether a line about to be refused at offboarding (never to be sent) must be looked for first: one our record
    may have lost, or one new only on the on-call's word that the re-publication kept the events' times (should the
    upstream have re-stamped an old line after all, a refusal would tell a paid line refused). A look costs one
    ledger read; a refusal is final for the upstream."""
    return _maybe_lost(line, p) or _new_by_kept_stamps(line, p)


def _stamped_after_loss(line: FundingInstruction, record: CustomerRecord) -> bool:
    """Whether ``line``'s event claims to have occurred after our state was lost (by the upstream's clock)."""
    assert record.recovered_at_ms is not None
    return line.occurred_ms >= record.recovered_at_ms - UPSTREAM_SKEW_MS


def _surely_after_loss(line: FundingInstruction, record: CustomerRecord) -> bool:
    """Whether ``line``'s event is stamped after our recovery by more than the upstream's clock can be ahead of
    ours: asked for after the loss, unless the upstream re-stamped it."""
    assert record.recovered_at_ms is not None
    return line.occurred_ms >= record.recovered_at_ms + UPSTREAM_SKEW_MS


def _awaits_republication(line: FundingInstruction, p: _Plan) -> bool:
    """Whether a maybe-lost ``line`` can be decided only once the re-publication is declared complete: until then
    a transfer the ledger cannot tie to it by its clientOid may be a line's the upstream has not re-published yet,
    so it is never attributed by elimination. A line stamped after the loss is not even looked for (it may be a
    new one, or a re-stamped old one: only the declaration can tell); one whose search found only such transfers
    (``CustomerRecord.awaiting_republication``) waits too."""
    return not _republished(p) and (_surely_after_loss(line, p.record) or line.key in p.record.awaiting_republication)


def _await_republication(line: FundingInstruction) -> str:
    """Why ``line`` waits: the declaration makes every customer due (``worker.recovery.declare_republished``)."""
    return (
        f"line {line.key} waits until the upstream's re-publication after the state loss is declared complete "
        "(provisioner recover --republished): a transfer of its amount may be a line not re-published yet"
    )


def _looked(line: FundingInstruction, record: CustomerRecord, policy: Policy) -> bool:
    """Whether a line of a recovered record was searched for already, or an operator said its current clientOid
    never moved money."""
    attempt = record.retry_counts.get(steps.fund(line.key), 0)
    current_oid = policy.naming.funding_client_oid(record.ref, line.key, attempt)
    return line.key in record.looked_for or current_oid in record.unsent_by_operator


def _look_for(p: _Plan, line: FundingInstruction, *, ask_if_unfound: bool = False) -> LookForTransfer:
    """Search the ledger for a transfer of ``line`` under any attempt's clientOid (our count of attempts may have
    been lost with our state; it never exceeds ``MAX_ATTEMPTS``), from its earliest possible send — from the
    sub-account's creation when its event claims to have occurred after the loss (a re-stamped re-publication
    would otherwise hide the payment it had)."""
    record, policy = p.record, p.policy
    room = _customer_cap_room(line, p)
    ask_if_eliminated = _refusable_for_another(line, p, room)
    return LookForTransfer(
        key=line.key,
        uid=p.sub.uid,
        currency=line.currency,
        amount=line.amount,
        client_oids=tuple(policy.naming.funding_client_oid(record.ref, line.key, a) for a in range(MAX_ATTEMPTS)),
        since_ms=_look_since(line, p),
        twins=_twins(line, p),
        ask_if_unfound=ask_if_unfound,
        may_eliminate=_republished(p),
        ask_if_eliminated=ask_if_eliminated,
        customer_cap_room=room,
        day_caps_until_ms=None if record.outcomes_heard else record.recovered_at_ms,
    )


def _refusal_to_look_for(line: FundingInstruction, p: _Plan) -> bool:
    """A refusal in doubt not looked for yet, nor blocked for an operator (what the look found waits there)."""
    record = p.record
    return (
        _refusal_in_doubt(line, record)
        and not _looked(line, record, p.policy)
        and steps.fund(line.key) not in record.blocked
        and line.key not in record.in_doubt()
    )


def _look_before_offboarding(p: _Plan, line: FundingInstruction, stage: str) -> Step:
    """Look ``line`` (refused, perhaps paid since by a retry) up in the ledger once what was sent before the loss
    shows there and the re-publication allows a judgement; ``stage`` words the wait."""
    assert p.record.recovered_at_ms is not None
    settled_at = p.record.recovered_at_ms + p.policy.transfer_settled_ms
    if p.now_ms < settled_at:
        p.wake(settled_at)
        return p.idle(f"{stage}: waiting for transfers sent before the state loss to show")
    if _awaits_republication(line, p):
        return p.idle(f"{stage}: {_await_republication(line)}")
    return _look_for(p, line)


def _look_since(line: FundingInstruction, p: _Plan) -> int:
    """From when ``line``'s transfer is searched for: its earliest possible send (from the sub-account's creation
    when its event claims to have occurred after the loss). A refusal in doubt was paid, if at all, by a retry after
    it, within what the ledger can still show: searched from the refusal, at most the ledger's window back (a retry
    older than that was long since told to the upstream)."""
    record = p.record
    after_loss = _stamped_after_loss(line, record)
    since = p.sub.created_at_ms - UPSTREAM_SKEW_MS if after_loss else _earliest_send(line, p.sub)
    if _refusal_in_doubt(line, record):
        refused_at = record.transfers[line.key].at_ms
        if refused_at <= (record.recovered_at_ms or 0):  # a restored refusal (a heard one is dated at the audit)
            since = max(since, refused_at - LEDGER_SKEW_MS)
        since = max(since, p.now_ms - LEDGER_MAX_WINDOW_MS + 2 * LEDGER_SKEW_MS)
    return since


def _customer_cap_room(line: FundingInstruction, p: _Plan) -> Decimal | None:
    """What the per-customer cap leaves beside what the customer was paid or may have been, after a loss without
    what the upstream heard (``LookForTransfer.customer_cap_room``); ``None`` where no such case or no cap."""
    record = p.record
    cap = p.policy.funding_caps.get(line.currency)
    if record.recovered_at_ms is None or record.outcomes_heard or cap is None:
        return None
    return cap - _moved_or_in_doubt(line, p)


def _moved_or_in_doubt(line: FundingInstruction, p: _Plan) -> Decimal:
    record = p.record
    moved = record.funded(line.currency) + _heard_shortfall(p.desired, record, line.currency)
    doubt = sum(
        (d.amount for k, d in record.in_doubt().items() if k != line.key and d.currency == line.currency), Decimal(0)
    )
    return moved + doubt


def _refusable_for_another(line: FundingInstruction, p: _Plan, room: Decimal | None) -> bool:
    """Whether ``line`` may have been refused before the loss by the per-customer cap because of a transfer of its
    amount that no line we know explains, had that transfer been another line's: one the upstream has not
    re-published yet (a declaration made early, before a straggler). What the upstream heard (``--heard``)
    settles it; without it, tying the transfer to this line by elimination would rest on the declaration alone,
    against a refusal the worker itself would have made. ``room``: ``_customer_cap_room``."""
    record = p.record
    if record.recovered_at_ms is None or record.outcomes_heard:
        return False
    return room is None or 2 * line.amount > room  # no cap: a currency without one is refused


def _unsettled_or_restored(line: FundingInstruction, record: CustomerRecord) -> bool:
    """Whether a recovered record's ``line`` must be looked for before the cap decides anything: unsettled, or
    refused for a cause a retry takes back before the loss or as the upstream heard it (``may_have_been_taken_back``:
    the line may have been retried and paid since, and the cap would not count it)."""
    return _unsettled(line, record) or _refusal_in_doubt(line, record)


def _refusal_in_doubt(line: FundingInstruction, record: CustomerRecord) -> bool:
    entry = record.transfers.get(line.key)
    return entry is not None and may_have_been_taken_back(entry, record.recovered_at_ms)


def _unsettled(line: FundingInstruction, record: CustomerRecord) -> bool:
    """Neither recorded (sent, accepted, refused) nor blocked."""
    return line.key not in record.transfers and steps.fund(line.key) not in record.blocked


def _funding(p: _Plan) -> Step | None:
    """The next funding line to decide: refuse it if the cap can never take it, hold it (and the later lines of
    its currency) while lines in doubt could use the room, else transfer it. After a recovery, unrecorded lines
    wait until anything sent before the loss has settled and is listed (the transfer settle delay); and every
    customer's line, a new customer's too, is sent only once the day's caps count what the ledger lists by then
    (``_seed_caps_first``)."""
    desired, record, policy = p.desired, p.record, p.policy
    in_doubt = record.in_doubt()
    awaiting: set[str] = set()
    if record.recovered_at_ms is not None:
        settled_at = record.recovered_at_ms + policy.transfer_settled_ms
        if p.now_ms < settled_at and any(_unsettled_or_restored(line, record) for line in desired.funding):
            p.waiting.append("funding waits for transfers sent before the state loss to show on the exchange")
            p.wake(settled_at)
            return None
        # the cap counts a line paid before the loss only once it is found: every unrecorded line is looked for
        # before any is decided against the cap (else a line refused before the loss is paid now, and the one
        # paid before is refused)
        adopted_at = record.adopted_at_ms
        for line in desired.funding:
            if adopted_at is not None and line.occurred_ms < adopted_at:
                continue  # refused below, unsearched: an adopted sub-account's earlier lines were never ours
            if not _maybe_lost(line, p) or not _unsettled_or_restored(line, record) or line.key in in_doubt:
                continue
            if _looked(line, record, policy):
                continue
            if _awaits_republication(line, p):
                # its currency waits with it: the cap cannot count what this line may turn out to have moved
                awaiting.add(line.currency)
                p.waiting.append(_await_republication(line))
                continue
            # a refusal the snapshot holds stands when nothing is found: no operator is asked about it
            ask = not record.outcomes_heard and _unsettled(line, record)
            return _look_for(p, line, ask_if_unfound=ask)
    held: set[str] = set(awaiting)
    # a line whose earlier send may have paid (the ledger showed nothing of it, maybe too early: ``earlier_sends``)
    # is decided before the others, so that none takes the room it may have used: it is sent (then in doubt, pending,
    # for the next), refused, or holds its currency — no other line of its currency is decided before it is. Such
    # lines are decided one after the other (counting one another in doubt while none is sent held them all for good)
    resends = {k for k in record.earlier_sends if k not in in_doubt}
    for line in sorted(desired.funding, key=lambda ln: ln.key not in resends):
        if not _unsettled(line, record) or line.key in in_doubt or line.currency in held:
            continue
        if record.adopted_at_ms is not None and line.occurred_ms < record.adopted_at_ms:
            return RefuseFunding(key=line.key, currency=line.currency, amount=line.amount, reason=ADOPTED_REASON)
        attempt = record.retry_counts.get(steps.fund(line.key), 0)
        if attempt >= MAX_ATTEMPTS:
            # every earlier attempt is known to have moved nothing; a bounded number of clientOids is what a
            # search after a loss can cover
            return _refuse(p, line, _attempts_spent_reason(attempt))
        cap = policy.funding_caps.get(line.currency)
        moved = record.funded(line.currency) + _heard_shortfall(desired, record, line.currency)
        doubt = sum((d.amount for d in in_doubt.values() if d.currency == line.currency), Decimal(0))
        decision = cap_decision(amount=line.amount, moved=moved, in_doubt=doubt, cap=cap)
        if decision == CapDecision.REFUSE:
            reason = (
                f"no per-customer funding cap is configured for {line.currency}"
                if cap is None
                else f"per-customer cap of {cap} {line.currency} would be exceeded (already funded {moved})"
            )
            return _refuse(p, line, reason)
        if decision == CapDecision.WAIT:
            held.add(line.currency)
            doubtful = ", ".join(sorted(k for k, d in in_doubt.items() if d.currency == line.currency))
            p.waiting.append(f"funding {line.key} waits for a verdict on {doubtful} (per-customer cap)")
            continue
        if record.recovered_at_ms is not None and not _republished(p):
            # a line paid before the loss whose outcome no one heard and that is not re-published yet is unknown
            # to the cap: nothing is sent until every line is known
            held.add(line.currency)
            p.waiting.append(_await_republication(line))
            continue
        if p.caps_due_at_ms is not None:
            return _seed_caps_first(p, p.caps_due_at_ms)
        return _transfer(p, line, attempt)
    return None


def _refuse(p: _Plan, line: FundingInstruction, reason: str) -> RefuseFunding | Transfer:
    """Refuse ``line``, never sent now: ``funding.refused`` — unless an earlier send of it may have gone through
    (``earlier_sends``: the ledger showed nothing of it, maybe too early). The refusal says nothing of that send:
    the transfer step is handed it and decides, without sending (``money_steps``: an operator is asked unless one
    said the line never moved)."""
    if p.record.earlier_sends.get(line.key):
        attempt = p.record.retry_counts.get(steps.fund(line.key), 0)
        return replace(_transfer(p, line, attempt), refusal=reason)
    return RefuseFunding(key=line.key, currency=line.currency, amount=line.amount, reason=reason)


def _transfer(p: _Plan, line: FundingInstruction, attempt: int) -> Transfer:
    """Send ``line`` (its ``attempt``): evidence-first where our record of an earlier send may have been lost."""
    record, sub, policy = p.record, p.sub, p.policy
    client_oid = policy.naming.funding_client_oid(record.ref, line.key, attempt)
    # after a loss a line is looked for before it is sent, unless an operator already said it never moved
    unsent = client_oid in record.unsent_by_operator
    lost = _maybe_lost(line, p)
    recovered = lost and not unsent
    earlier = record.earlier_sends.get(line.key, 0)
    if lost and unsent and not earlier:
        earlier = _earliest_send(line, sub)  # searched for a second payment once it is sent
    if not lost and not earlier and _new_by_kept_stamps(line, p):
        # new on the on-call's word that the re-publication kept the events' times: should it have re-stamped an
        # old line after all, its earlier payment shows as a second one, flagged, never silent
        earlier = sub.created_at_ms - UPSTREAM_SKEW_MS
    return Transfer(
        key=line.key,
        purpose=TransferPurpose.FUND,
        client_oid=client_oid,
        attempt=attempt,
        uid=sub.uid,
        currency=line.currency,
        amount=line.amount,
        direction="OUT",
        sub_wallet=policy.sub_wallet,
        broker_wallet=policy.broker_wallet,
        evidence_first=recovered,
        since_ms=_earliest_send(line, sub) if recovered else None,
        operator_unsent=unsent,
        earlier_send_ms=earlier,
        twins=_twins(line, p) if lost else 0,
    )


def _seed_caps_first(p: _Plan, due_at_ms: int) -> SeedDailyCaps | None:
    """A line would be sent, but our state was lost and the day's caps were seeded from a ledger that may not list
    a transfer in flight at the loss yet (it lists one only after its lag): every customer's funding waits until
    it does (``due_at_ms``), then the caps are seeded again from it, once, before any line is decided."""
    if p.now_ms < due_at_ms:
        p.wake(due_at_ms)
        p.waiting.append(AWAITING_LEDGER)
        return None
    return SeedDailyCaps(due_at_ms=due_at_ms)


WITHDRAWN_REASON = "none of its permissions is wanted any more, and the new ones wait for the KYC review"


def _keys(p: _Plan, *, grant: bool = True) -> Step | None:
    """Issue the wanted generation (making room under the key cap first), align live keys, revoke superseded
    keys once their successor's grace is over, rotate by age. A blocked issuance holds back none of the rest.
    ``grant`` False (a KYC review holds new access back): no key is issued and no permission added — live keys get
    the newest whitelist and only the permissions they hold that are still wanted (a key left with none is revoked);
    superseded keys are revoked."""
    desired, record, sub, now_ms, policy = p.desired, p.record, p.sub, p.now_ms, p.policy
    access = desired.access
    assert access is not None
    generation = desired.requested_rotations + record.age_rotations
    current = record.key(generation)
    live = sorted(record.live_keys, key=lambda k: (k.generation, k.created_at_ms))
    if grant and current is None and steps.issue(generation) not in record.blocked:
        waits = False
        if len(live) >= policy.max_live_keys:
            for oldest in live:
                if oldest.generation < generation and steps.revoke(oldest.api_key) not in record.blocked:
                    taken_over = _successor(oldest, live)
                    if taken_over is None:
                        continue  # no newer key takes over from it: it may be the one the upstream uses
                    if _awaits_delivery(taken_over, p):
                        waits = True  # the upstream may hold no newer key than this one: no room is made yet
                        break
                    return RevokeApiKey(
                        uid=sub.uid,
                        api_key=oldest.api_key,
                        reason="rotated (the live-key cap left no room)",
                        successor=taken_over.api_key,
                    )
        if not waits:
            return IssueApiKey(
                uid=sub.uid,
                generation=generation,
                label=policy.naming.key_label(generation),
                permissions=access.permissions,
                ip_whitelist=access.ip_whitelist,
            )
    for key in live:
        # a key whose secret was lost is maintained too: it is replaced, but may be the one the upstream holds
        # until its replacement is delivered
        wanted = access.permissions if grant else tuple(x for x in access.permissions if x in key.permissions)
        if not wanted and steps.revoke(key.api_key) not in record.blocked:
            # the newest approval withdrew everything this key may do, and what it grants instead waits for the
            # review: the key goes (a key cannot be narrowed to nothing)
            return RevokeApiKey(uid=sub.uid, api_key=key.api_key, reason=WITHDRAWN_REASON, successor=None)
        if (
            wanted
            and (key.access_in_doubt or (key.permissions, key.ip_whitelist) != (wanted, access.ip_whitelist))
            and steps.update(key.api_key) not in record.blocked
        ):
            return UpdateApiKey(
                uid=sub.uid,
                api_key=key.api_key,
                label=key.label,
                permissions=wanted,
                ip_whitelist=access.ip_whitelist,
            )
    for key in live:
        if key.generation >= generation or steps.revoke(key.api_key) in record.blocked:
            continue
        successor = _successor(key, live)
        if successor is None:
            continue  # the customer's only way in while the wanted generation cannot be issued
        grace_end = successor.created_at_ms + policy.rotation_grace_ms
        if now_ms >= grace_end and _awaits_delivery(successor, p):
            continue
        if now_ms >= grace_end:
            return RevokeApiKey(uid=sub.uid, api_key=key.api_key, reason="rotated", successor=successor.api_key)
        p.wake(grace_end)
    if grant and current is not None:
        age_due = current.created_at_ms + policy.key_max_age_ms
        if now_ms >= age_due:
            return RotateForAge(generation=generation)
        p.wake(age_due)
    return None


DELIVERY_POLL_MS = 60_000
"""How often a rotated-out key whose successor the upstream has not received yet is looked at again."""


def _awaits_delivery(successor: KeyRecord, p: _Plan) -> bool:
    """Whether the key ``successor`` took over from must stay live for now (``plan``'s ``deliveries``): the
    upstream has not received ``successor``'s credentials yet, or only less than a grace ago (``_successor``
    holds its secret: a lost one is never waited for)."""
    if successor.api_key not in p.deliveries:
        return False
    delivered = p.deliveries[successor.api_key]
    if delivered is None:
        p.wake(p.now_ms + DELIVERY_POLL_MS)
        p.waiting.append(f"key {successor.api_key}'s api_key.issued has not reached the upstream yet")
        return True
    switched_by = delivered + p.policy.rotation_grace_ms
    if p.now_ms >= switched_by:
        return False
    p.wake(switched_by)
    p.waiting.append(f"key {successor.api_key} reached the upstream only at {delivered}: its grace runs from then")
    return True


def _successor(key: KeyRecord, live: list[KeyRecord]) -> KeyRecord | None:
    """The oldest live key of a newer generation whose secret we hold: the one that takes over from ``key``. A
    newer key whose secret was lost (after a loss of our state) is looked through: we cannot tell whether it ever
    reached the upstream, so it takes over from nothing; ``None`` while no newer key can (the wanted generation is
    being issued: ``key`` may be the upstream's only one)."""
    newer = [k for k in live if k.generation > key.generation and k.sealed is not None]
    return min(newer, key=lambda k: k.created_at_ms) if newer else None


def _confirm(p: _Plan) -> Step | None:
    """An accepted transfer whose final status is due to be read, or a committed one due to be searched for a
    second payment."""
    for transfer in sorted(p.record.transfers.values(), key=lambda t: t.key):
        if transfer.status is TransferStatus.COMMITTED and transfer.recheck_at_ms:
            if p.now_ms >= transfer.recheck_at_ms:
                return RecheckTransfer(key=transfer.key)
            p.wake(transfer.recheck_at_ms)
        if transfer.status is not TransferStatus.ACCEPTED or transfer.order_id is None:
            continue
        if p.now_ms >= transfer.check_at_ms:
            return ConfirmTransfer(key=transfer.key, order_id=transfer.order_id)
        p.wake(transfer.check_at_ms)
    return None
