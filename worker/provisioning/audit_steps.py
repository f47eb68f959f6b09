"""Rebuilding a customer's record from the exchange after our state was lost (a ``recovered`` state epoch).

Before anything else is done for a customer in a recovered epoch, its record is audited: the sub-account is
looked up by the names we derive for the customer (in the listing ``provisioner recover`` took), its keys are
listed, and what the exchange has is recorded, with the funding outcomes the upstream heard before the loss when
the recovery was given them (``worker.heard``). A key whose secret we no longer hold is kept live until its
replacement is issued and delivered, then revoked like any rotated-out key (the upstream hears
``api_key.issued`` and ``api_key.revoked``). Funding lines not recorded are from then on sent evidence-first:
under a clientOid the exchange may already hold a transfer for (``money_steps``). A new customer with no
sub-account is audited too, at no exchange cost.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from handlers import steps
from handlers.commands import AuditFromExchange
from handlers.journal import JournalAction
from handlers.naming import Naming
from handlers.records import (
    Blocked,
    CustomerRecord,
    Evidence,
    KeyRecord,
    SubAccountRecord,
    TransferIntent,
    TransferPurpose,
    TransferRecord,
    TransferStatus,
)
from handlers.refusals import HEARD_REFUSAL_NOTE
from handlers.steps import StepId
from worker.exchange.models import ApiKey
from worker.heard import IN_DOUBT, HeardOutcome, heard_for, heard_live_keys, outcomes_known
from worker.provisioning.context import StepContext
from worker.provisioning.outbound import outcome
from worker.provisioning.waits import LISTING_WAIT, own_wait
from worker.store.customers import OutboundEvent
from worker.store.subaccount_index import write_sub_account_index

__all__ = ["audit_from_exchange"]

generation_of = Naming.generation_of


def audit_from_exchange(cmd: AuditFromExchange, ctx: StepContext) -> None:
    """Record what the exchange has for this customer; mark the record audited in the current epoch."""
    s = ctx.services
    record = ctx.record
    now = ctx.now_ms()
    findings: dict[str, object] = {"reason": cmd.reason}
    outbound: list[OutboundEvent] = []
    update: dict[str, object] = {"audited_epoch": s.store.guard.audit_epoch}
    # the latest recovery after a loss (an adoption loses nothing), if any
    raw_lost_at = s.store.redis.get(s.store.keys.recovery_lost_at)
    lost_at = None if raw_lost_at is None else int(raw_lost_at)
    sub = record.sub_account
    if sub is None:
        found = _find_sub_account(ctx) or _find_once_listed(ctx, lost_at, now)
        if found is not None:
            version, attempt, sub = found
            update |= {"sub_account": sub, "name_attempt": attempt, "name_version": version}
            findings["sub_account"] = sub.uid
            outbound.append(
                outcome(record, "sub_account.created", sub.uid, now, uid=sub.uid, account_name=sub.account_name)
            )
    given, heard = heard_for(s.store.redis, s.store.keys, record.ref)
    update["outcomes_heard"] = outcomes_known(given, heard)
    seeded = _seed_heard(record, heard, now, sub_wallet=s.policy.sub_wallet)
    journal: list[tuple[JournalAction, dict[str, Any]]] = [(JournalAction.AUDITED, findings)]
    if seeded:
        update |= seeded
        for o in heard:
            if _heard_decides(o, record.transfers.get(o.key)):
                action = JournalAction.TRANSFER_COMMITTED if o.verdict == "completed" else JournalAction.FUNDING_REFUSED
                journal.append((action, {"key": o.key, "evidence": "as the upstream heard before the loss"}))
    active_delta = 0
    if sub is not None:
        # after a loss, what was sent before it may not be listed yet, and the record may be a restored snapshot —
        # what it says operators cleared or the ledger did not show may have changed since (a line paid after the
        # snapshot): every line is looked for again
        if lost_at is not None:
            update |= _after_loss(record.model_copy(update=update), lost_at, findings)
        if lost_at is not None and now < lost_at + s.policy.listing_lag_ms:
            # a key issued just before the loss, which no record of ours may know any more, is listed only then
            why = "the exchange may not list yet a key issued just before the loss (PROVISIONER_LISTING_LAG_MS)"
            raise own_wait(LISTING_WAIT, why, lost_at + s.policy.listing_lag_ms - now)
        ctx.heartbeat()
        listed = ctx.exchange.api_keys.list(uid=sub.uid)
        _wait_for_the_listing(record, listed, now=now, lag=s.policy.listing_lag_ms)
        heard_live = heard_live_keys(s.store.redis, s.store.keys, record.ref)
        keys, unknown, active_delta, revoked = _keys_as_listed(record, listed, now, heard_live)
        outbound += revoked
        update["keys"] = tuple(keys)
        findings["keys_without_secret"] = [k.api_key for k in unknown]
        lost = [k.generation for k in keys if k.live and k.sealed is None]
        target = cmd.requested_rotations + record.age_rotations
        if lost and max(lost) >= target:
            # the wanted key must be a new one, newer than every key whose secret is lost
            update["age_rotations"] = record.age_rotations + max(lost) + 1 - target
            findings["generation_floor"] = max(lost) + 1
    ctx.commit(
        record.model_copy(update=update),
        journal=journal,
        outbound=outbound,
        stats={"keys_active": active_delta} if active_delta else None,
    )


def _wait_for_the_listing(record: CustomerRecord, listed: Sequence[ApiKey], *, now: int, lag: int) -> None:
    """A live key of the record the audit would find gone may only not be listed yet: the exchange lists a new key
    up to ``lag`` ms late. It is judged once the listing must show it. Raises ``own_wait(LISTING_WAIT)`` until
    then. (A key of the heard file was issued before the loss: the audit waits for those before it lists.)"""
    on_exchange = {k.api_key for k in listed}
    since = [k.created_at_ms for k in record.keys if k.live and k.api_key not in on_exchange]
    if since and now < max(since) + lag:
        why = "a key is not listed yet, and the exchange lists a new key up to PROVISIONER_LISTING_LAG_MS late"
        raise own_wait(LISTING_WAIT, why, max(since) + lag - now)


def _keys_as_listed(
    record: CustomerRecord, listed: Sequence[ApiKey], now: int, heard_live: Collection[str] = ()
) -> tuple[list[KeyRecord], list[ApiKey], int, list[OutboundEvent]]:
    """The record's keys as the exchange lists them: a live key it no longer lists is revoked — by us before a
    rollback lost the record of it (and maybe the event), or by someone else: the upstream, holding it live until
    told, gets ``api_key.revoked`` under the revocation's own id (dropped if heard already); so does a key the
    upstream was told issued (``heard_live``, from the recovery's ``--heard`` file) that neither the exchange nor
    the record knows any more (revoked just before a total loss, its event lost with it). A listed key the record
    does not know is added without a secret. Returns the keys, the unknown listed ones, the change in live keys and
    the events."""
    on_exchange = {k.api_key for k in listed}
    recorded = {k.api_key for k in record.keys}
    keys: list[KeyRecord] = []
    events: list[OutboundEvent] = []
    delta = 0
    for key in record.keys:
        if key.live and key.api_key not in on_exchange:
            gone = "no longer on the exchange"
            keys.append(key.model_copy(update={"revoked_at_ms": now, "revoke_reason": gone, "sealed": None}))
            delta -= 1
            events.append(outcome(record, "api_key.revoked", key.api_key, now, api_key=key.api_key, reason=gone))
        else:
            keys.append(key)
    gone_unrecorded = sorted(set(heard_live) - on_exchange - recorded)
    for api_key in gone_unrecorded:
        why = "no longer on the exchange"
        events.append(outcome(record, "api_key.revoked", api_key, now, api_key=api_key, reason=why))
    unknown = [k for k in listed if k.api_key not in recorded]
    for listed_key in sorted(unknown, key=lambda k: k.created_at):
        keys.append(
            KeyRecord(
                generation=generation_of(listed_key.label),
                label=listed_key.label,
                api_key=listed_key.api_key,
                permissions=tuple(sorted(listed_key.permissions)),
                ip_whitelist=tuple(listed_key.ip_whitelist),
                created_at_ms=listed_key.created_at,
                sealed=None,
            )
        )
        delta += 1
    return keys, unknown, delta, events


def _after_loss(record: CustomerRecord, lost_at: int, findings: dict[str, object]) -> dict[str, object]:
    """What a recovery after a loss resets in a record, which may be a restored snapshot: what operators cleared
    or the ledger did not show may have changed since, so every line is looked for again. A funding intent of a
    snapshot goes too (one started before the loss: a later recovery, an adoption, audits again and must not drop
    an intent of the live state): the line may have gone on under a later clientOid (refused, retried, paid), so
    re-sending this one's is no evidence; the line is looked for under every clientOid it may have used (a sweep's
    stays: it moves back only what is there)."""
    reset: dict[str, object] = {
        "recovered_at_ms": lost_at,
        "unsent_by_operator": (),
        "looked_for": (),
        "awaiting_republication": (),
    }
    pending = record.pending
    details = pending.details if pending is not None else None
    before_loss = pending is not None and pending.started_at_ms <= lost_at  # not one since (an adoption)
    if before_loss and isinstance(details, TransferIntent) and details.purpose is TransferPurpose.FUND:
        reset["pending"] = None
        findings["pending_dropped"] = details.key
    return reset | _funding_blocks_after_loss(record.blocked, lost_at, findings)


def _funding_blocks_after_loss(
    blocked: Mapping[StepId, Blocked], lost_at: int, findings: dict[str, object]
) -> dict[str, object]:
    """A funding line blocked before the loss (a restored snapshot's block: the exchange refused an attempt, or an
    operator was asked about one clientOid) may have gone on since under a later clientOid, paid: the block goes,
    and the line is looked for under every clientOid it may have used, as one whose record was lost."""
    stale = sorted(k for k, b in blocked.items() if steps.is_fund(k) and b.at_ms <= lost_at)
    if not stale:
        return {}
    findings["blocks_dropped"] = stale
    return {"blocked": {k: b for k, b in blocked.items() if k not in stale}}


def _seed_heard(record: CustomerRecord, heard: list[HeardOutcome], now: int, *, sub_wallet: str) -> dict[str, object]:
    """The record's transfers, blocks and pending intent with every heard outcome of a line it does not hold:
    a completion is committed (never sent again), a refusal refused (never sent). Empty when nothing is new."""
    new = [o for o in heard if _heard_decides(o, record.transfers.get(o.key))]
    if not new:
        return {}
    transfers = dict(record.transfers)
    for o in new:
        completed = o.verdict == "completed"
        transfers[o.key] = TransferRecord(
            key=o.key,
            purpose=TransferPurpose.FUND,
            client_oid=o.client_oid if completed else None,
            currency=o.currency,
            amount=o.amount_decimal,
            sub_wallet=sub_wallet,
            status=TransferStatus.COMMITTED if completed else TransferStatus.REFUSED,
            order_id=o.order_id if completed else None,
            note=_heard_note(o),
            at_ms=now,
            evidence=Evidence.UPSTREAM if completed else None,
            # told paid more than once: counted so by the per-customer cap (how many times, the event did not say)
            extra_paid=(1 if o.paid_again is None else o.paid_again) if completed else 0,
            extra_unverified=completed and o.paid_again is None,
        )
    keys = {o.key for o in new}
    pending = record.pending
    if pending is not None and isinstance(pending.details, TransferIntent) and pending.details.key in keys:
        pending = None
    blocked = {k: v for k, v in record.blocked.items() if k not in {steps.fund(key) for key in keys}}
    return {"transfers": transfers, "pending": pending, "blocked": blocked}


def _heard_decides(outcome: HeardOutcome, held: TransferRecord | None) -> bool:
    """Whether what the upstream heard replaces what the record holds of the line: nothing, a transfer whose final
    status it never read (a restored snapshot's), or a refusal of a line the upstream heard paid (money moved wins).
    A final status the record holds stands."""
    if outcome.verdict == IN_DOUBT:
        return False  # decides nothing (``worker.heard.outcomes_known``)
    if held is None or held.status is TransferStatus.ACCEPTED:
        return True
    return outcome.verdict == "completed" and held.status is TransferStatus.REFUSED


def _heard_note(outcome: HeardOutcome) -> str:
    note = (
        HEARD_REFUSAL_NOTE
        if outcome.verdict == "refused"
        else "completed before our state was lost, as the upstream heard"
    )
    return f"{note}: {outcome.reason}" if outcome.reason else note


def _find_once_listed(ctx: StepContext, lost_at: int | None, now: int) -> tuple[int, int, SubAccountRecord] | None:
    """After a loss, a sub-account the listing ``provisioner recover`` took (at ``lost_at``) does not show may only
    have been too new to be listed then: once the exchange must list it (``PROVISIONER_LISTING_LAG_MS`` after the
    loss) the index is read again from the whole listing — once for every customer, the first audit to need it
    (one page per 100 sub-accounts) — and the customer's names looked up in it. Raises ``own_wait(LISTING_WAIT)``
    until then. ``None`` without a loss, or when none is found."""
    s = ctx.services
    lag = s.policy.listing_lag_ms
    if lost_at is None or lag <= 0:
        return None
    listed_by = lost_at + lag
    if now < listed_by:
        why = "no sub-account in the listing taken at the recovery, and it may only have been too new to be listed"
        raise own_wait(LISTING_WAIT, why, listed_by - now)
    if int(s.store.redis.get(s.store.keys.recovery_accounts_at) or 0) < listed_by:
        ctx.heartbeat()
        write_sub_account_index(
            ctx.exchange.sub_accounts.iter_all(), s.store.redis, s.store.keys, s.policy.naming, now_ms=now
        )
        return _find_sub_account(ctx)
    return None


def _find_sub_account(ctx: StepContext) -> tuple[int, int, SubAccountRecord] | None:
    """Our sub-account for this customer in the listing ``provisioner recover`` took, by derived name under any
    name-secret version (a record rebuilt after a loss takes the version of the name found): (version, attempt,
    sub-account)."""
    s = ctx.services
    for version, attempt, name in s.policy.naming.name_candidates(ctx.record.customer_id):
        raw = s.store.redis.hget(s.store.keys.recovery_accounts, name)
        if raw:
            found = json.loads(raw)
            sub = SubAccountRecord(uid=str(found["uid"]), account_name=name, created_at_ms=int(found["at"]))
            return version, attempt, sub
    return None
