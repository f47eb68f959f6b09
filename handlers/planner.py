"""The planner: from desired state and recorded state to the next step. Pure; no I/O, clock or randomness.

``plan`` returns one step, not a list, on purpose: every exchange write changes the record (a uid, an api key,
an order id), and the step after it depends on that outcome. The shell performs the step, records what
happened, and plans again until ``Idle``. Because the planner looks only at the two states (level-triggered,
like a controller), a duplicate event, a re-ordered event, a crash or a replay can only lead to the same
steps again, never to different ones.

Order of concerns: an unsettled intent first (resolve by reading), then the sub-account, then offboarding
(which dominates everything), then proxy KYC, then funding (before the first key exists, so the sub-account
is quiescent while money moves into it), then keys (issue, align, revoke after rotation grace, rotate by age).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from handlers.commands import (
    CheckKyc,
    CloseCustomer,
    CreateSubAccount,
    HoldOffboarding,
    Idle,
    IssueApiKey,
    ReadBalances,
    RefuseFunding,
    ResolveApiKey,
    ResolveRevoke,
    ResolveSubAccount,
    ResolveTransfer,
    RevokeApiKey,
    RotateForAge,
    Step,
    SubmitKyc,
    Transfer,
    UpdateApiKey,
)
from handlers.desired import DesiredState
from handlers.naming import Naming
from handlers.records import CustomerRecord, Intent, IntentKind, KycStage, SubAccountRecord

__all__ = ["Policy", "TransferVerdict", "judge_transfer", "plan"]

WALLETS = ("MAIN", "TRADE")


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


def plan(desired: DesiredState, record: CustomerRecord, *, now_ms: int, policy: Policy) -> Step:
    """The next step for this customer. See the module docstring for the order of concerns."""
    if record.closed_at_ms is not None:
        return Idle("closed")
    if record.pending is not None:
        return _settle(record.pending, now_ms, policy)
    if not desired.created:
        if desired.offboarded:
            return CloseCustomer("offboarded before it was created")
        return Idle("waiting for customer.created")
    sub = record.sub_account
    if sub is None:
        if desired.offboarded:
            return CloseCustomer("offboarded before its sub-account was created")
        if "subaccount" in record.blocked:
            return Idle("sub-account creation is blocked")
        name = policy.naming.account_name(record.customer_id, record.name_attempt)
        return CreateSubAccount(name, record.name_attempt)
    if desired.offboarded:
        return _offboard(record, sub, policy)
    if desired.access is None:
        return Idle("waiting for customer.kyc_approved")
    return (
        _kyc(desired, record, sub, now_ms, policy)
        or _funding(desired, record, sub, policy)
        or _keys(desired, record, sub, now_ms, policy)
    )


def _settle(intent: Intent, now_ms: int, policy: Policy) -> Step:
    """An intent stands: its write may or may not have happened. Read the exchange, once it has settled."""
    # When the exchange answered "no", nothing of ours can still be in flight for it: look at once.
    ready_at = 0 if intent.details.get("refused") else intent.started_at_ms + policy.resolve_delay_ms
    if now_ms < ready_at:
        return Idle(f"waiting for {intent.kind} to settle before reading the exchange", ready_at)
    d = intent.details
    match intent.kind:
        case IntentKind.CREATE_SUB_ACCOUNT:
            return ResolveSubAccount(intent.token, int(d["attempt"]))
        case IntentKind.ISSUE_KEY:
            return ResolveApiKey(str(d["uid"]), int(d["generation"]), intent.token)
        case IntentKind.UPDATE_KEY:  # a whole-replacement write: repeating it is the resolution
            return UpdateApiKey(
                str(d["uid"]), intent.token, str(d["label"]), tuple(d["permissions"]), tuple(d["ip_whitelist"])
            )
        case IntentKind.REVOKE_KEY:
            return ResolveRevoke(str(d["uid"]), intent.token, str(d["reason"]))
        case IntentKind.TRANSFER:
            return ResolveTransfer(str(d["uid"]), str(d["key"]))
        case IntentKind.SUBMIT_KYC:
            return CheckKyc(str(d["uid"]))
    raise ValueError(f"unknown intent kind {intent.kind!r}")  # pragma: no cover - exhaustive above


def _offboard(record: CustomerRecord, sub: SubAccountRecord, policy: Policy) -> Step:
    """Revoke every key at once, then move every available balance back, then close."""
    live = record.live_keys
    for live_key in live:
        if f"revoke:{live_key.api_key}" not in record.blocked:
            return RevokeApiKey(sub.uid, live_key.api_key, "offboarded")
    if live:
        return Idle("key revocation is blocked")
    if "sweep" in record.blocked:
        return Idle("moving balances back is blocked")
    snapshot = record.balances
    if snapshot is None or snapshot.sweep_round != record.sweep_round:
        return ReadBalances(sub.uid)
    for wallet in WALLETS:
        for currency, (balance, available) in sorted(snapshot.wallets.get(wallet, {}).items()):
            if available > 0:
                key = f"sweep:{record.sweep_round}"
                attempt = record.retry_counts.get("sweep", 0)
                return Transfer(
                    key,
                    "sweep",
                    policy.naming.sweep_client_oid(record.ref, record.sweep_round, attempt),
                    sub.uid,
                    currency,
                    available,
                    "IN",
                    wallet,
                    policy.broker_wallet,
                    expected_before=balance,
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
        return HoldOffboarding(f"funds the transfer endpoint cannot move back remain: {listed}")
    return CloseCustomer("offboarded")


def _kyc(
    desired: DesiredState, record: CustomerRecord, sub: SubAccountRecord, now_ms: int, policy: Policy
) -> Step | None:
    """Proxy KYC, when enabled and documents came with the approval: submit, follow, gate keys and funding."""
    if not policy.proxy_kyc or desired.kyc_documents_event is None:
        return None
    progress = record.kyc
    if progress is None or (progress.stage is KycStage.REJECT and progress.event_id != desired.kyc_documents_event):
        if "kyc" in record.blocked:
            return Idle("KYC submission is blocked")
        return SubmitKyc(sub.uid, desired.kyc_documents_event)
    if progress.stage in (KycStage.SUBMITTED, KycStage.PROCESS):
        if now_ms >= progress.next_check_ms:
            return CheckKyc(sub.uid)
        return Idle("waiting for the KYC review", progress.next_check_ms)
    if progress.stage is KycStage.REJECT:
        return Idle("KYC rejected")
    return None


def _funding(desired: DesiredState, record: CustomerRecord, sub: SubAccountRecord, policy: Policy) -> Step | None:
    """The first funding line not yet settled: refuse it if it breaks the per-customer cap, else transfer it."""
    for line in desired.funding:
        if line.key in record.transfers or f"fund:{line.key}" in record.blocked:
            continue
        cap = policy.funding_caps.get(line.currency)
        already = record.funded(line.currency)
        if cap is None:
            return RefuseFunding(
                line.key, line.currency, line.amount, f"no per-customer funding cap is configured for {line.currency}"
            )
        if already + line.amount > cap:
            return RefuseFunding(
                line.key,
                line.currency,
                line.amount,
                f"per-customer cap of {cap} {line.currency} would be exceeded (already funded {already})",
            )
        attempt = record.retry_counts.get(f"fund:{line.key}", 0)
        # Before the first key exists nobody else can move money in the sub-account, so our own records
        # determine its balance; afterwards the customer may trade and the shell must read it first.
        expected = record.committed_into(line.currency, policy.sub_wallet) if not record.keys else None
        return Transfer(
            line.key,
            "fund",
            policy.naming.funding_client_oid(record.ref, line.key, attempt),
            sub.uid,
            line.currency,
            line.amount,
            "OUT",
            policy.sub_wallet,
            policy.broker_wallet,
            expected,
        )
    return None


def _keys(desired: DesiredState, record: CustomerRecord, sub: SubAccountRecord, now_ms: int, policy: Policy) -> Step:
    access = desired.access
    assert access is not None
    generation = desired.requested_rotations + record.age_rotations
    current = record.key(generation)
    if current is None:
        if f"key:{generation}" in record.blocked:
            return Idle("key issuance is blocked")
        return IssueApiKey(
            sub.uid, generation, policy.naming.key_label(generation), access.permissions, access.ip_whitelist
        )
    for key in record.live_keys:
        if (key.permissions, key.ip_whitelist) != (access.permissions, access.ip_whitelist) and (
            f"update:{key.api_key}" not in record.blocked
        ):
            return UpdateApiKey(sub.uid, key.api_key, key.label, access.permissions, access.ip_whitelist)
    wake: list[int] = []
    superseded = [
        k for k in record.live_keys if k.generation < generation and f"revoke:{k.api_key}" not in record.blocked
    ]
    if superseded:
        grace_end = current.created_at_ms + policy.rotation_grace_ms
        if now_ms >= grace_end:
            return RevokeApiKey(sub.uid, superseded[0].api_key, "rotated")
        wake.append(grace_end)
    age_due = current.created_at_ms + policy.key_max_age_ms
    if now_ms >= age_due:
        return RotateForAge(generation)
    wake.append(age_due)
    return Idle("converged", min(wake))


class TransferVerdict(StrEnum):
    COMMITTED = "committed"
    NOT_COMMITTED = "not_committed"
    AMBIGUOUS = "ambiguous"


def judge_transfer(
    *, before: Decimal, amount: Decimal, direction: str, observed: Decimal, quiescent: bool = True
) -> TransferVerdict:
    """Did a transfer whose outcome was lost happen? Compare the sub-account balance with before and after.

    Works whatever the exchange does with a repeated clientOid (dedupe, reject or execute again), because it
    looks at the money, not at the clientOid. Anything other than exactly "before" or exactly "after" is
    ``AMBIGUOUS``: a human must look, nothing is sent again. "Before" proves nothing was sent only while nobody
    else can move money in the sub-account (``quiescent``: no key issued yet, or keys revoked for offboarding):
    otherwise a trade of the same amount could hide a committed transfer, and sending again could fund twice.
    """
    after = before + amount if direction == "OUT" else before - amount
    if observed == after:
        return TransferVerdict.COMMITTED
    if observed == before and quiescent:
        return TransferVerdict.NOT_COMMITTED
    return TransferVerdict.AMBIGUOUS
