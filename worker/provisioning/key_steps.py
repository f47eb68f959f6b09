"""API-key steps: issue (capture and seal the secret at once), resolve a lost issue, align, revoke, rotate.

The secret of an issued key is sealed at rest with the encryption keyring and delivered to the upstream only
encrypted to its public key (``api_key.issued``'s ``credentials``: ``worker.delivery``)."""

from __future__ import annotations

from handlers import steps
from handlers.commands import (
    IssueApiKey,
    ListKeys,
    ResolveApiKey,
    ResolveRevoke,
    RevokeApiKey,
    RotateForAge,
    UpdateApiKey,
)
from handlers.intents import IssueKeyDetails, RevokeKeyDetails, UpdateKeyDetails
from handlers.journal import JournalAction
from handlers.naming import Naming
from handlers.planner import retry_overdue
from handlers.records import IntentKind, KeyRecord
from worker.exchange import OutcomeUnknownError, PermanentError
from worker.exchange.models import Permission
from worker.provisioning.blocks import fail, not_done
from worker.provisioning.context import StepContext
from worker.provisioning.outbound import key_updated, outcome

__all__ = [
    "issue_api_key",
    "list_keys",
    "resolve_api_key",
    "resolve_revoke",
    "revoke_api_key",
    "rotate_for_age",
    "update_api_key",
]


def issue_api_key(cmd: IssueApiKey, ctx: StepContext) -> None:
    """Add SubAccount API with a fresh random passphrase. The secret is sealed and recorded in the same commit
    that emits ``api_key.issued``; if that commit never happens, the intent stays and the key is deleted by
    ``resolve_api_key`` before a new one is issued, so no key ever lives without its secret held."""
    s = ctx.services
    passphrase = s.passphrase()
    ctx.write_intent(
        IntentKind.ISSUE_KEY,
        cmd.label,
        IssueKeyDetails(
            uid=cmd.uid,
            generation=cmd.generation,
            permissions=list(cmd.permissions),
            ip_whitelist=list(cmd.ip_whitelist),
        ),
    )
    try:
        created = ctx.exchange.api_keys.add(
            uid=cmd.uid,
            passphrase=passphrase,
            ip_whitelist=cmd.ip_whitelist,
            permissions=[Permission(p) for p in cmd.permissions],
            label=cmd.label,
        )
    except PermanentError as exc:
        fail(ctx, steps.issue(cmd.generation), f"the exchange refused to issue the key: {exc}")
        return
    now = ctx.now_ms()
    secret = created.secret_key.get_secret_value()
    key = KeyRecord(
        generation=cmd.generation,
        label=cmd.label,
        api_key=created.api_key,
        permissions=cmd.permissions,
        ip_whitelist=cmd.ip_whitelist,
        created_at_ms=now,
        sealed=s.keyring.seal({"secret": secret, "passphrase": passphrase}),
    )
    credentials = s.delivery.seal({"api_key": created.api_key, "secret": secret, "passphrase": passphrase})
    record = ctx.record.model_copy(update={"keys": (*ctx.record.keys, key)}).noting_futures()
    ctx.settle(
        record,
        JournalAction.API_KEY_ISSUED,
        {
            "api_key": key.api_key,
            "generation": key.generation,
            "label": key.label,
            "permissions": list(key.permissions),
            "ip_whitelist": list(key.ip_whitelist),
        },
        outbound=[
            outcome(
                record,
                "api_key.issued",
                key.api_key,
                now,
                uid=cmd.uid,
                api_key=key.api_key,
                label=key.label,
                generation=key.generation,
                permissions=list(key.permissions),
                ip_whitelist=list(key.ip_whitelist),
                credentials=credentials,
            )
        ],
        stats={"keys_active": 1, "keys_issued": 1},
    )


def resolve_api_key(cmd: ResolveApiKey, ctx: StepContext) -> None:
    """After a lost issue: list the sub-account's keys and delete every key labelled ``cmd.label`` that we do not
    hold (its secret is lost), telling the upstream each one gone. Only when none is left is the intent cleared, so
    the key is issued again (its first attempt's moment kept: ``blocks.not_done``, which blocks the issuance instead
    once every attempt failed for the bound). A delete left unanswered is remembered in the intent
    (``orphans_unsure``) and told once a later listing no longer shows the key; past the bound, the issuance is
    blocked with the intent kept (``planner.retry_overdue``)."""
    ctx.heartbeat()
    held = {k.api_key for k in ctx.record.live_keys}
    listed = ctx.exchange.api_keys.list(uid=cmd.uid)
    orphans = [k for k in listed if k.label == cmd.label and k.api_key not in held]
    record = ctx.record
    pending = record.pending
    assert pending is not None and isinstance(pending.details, IssueKeyDetails)
    unsure_before = set(pending.details.orphans_unsure)
    deleted: list[str] = []
    unsure: list[str] = []
    for orphan in orphans:
        ctx.heartbeat()
        try:
            answered = ctx.exchange.api_keys.delete(uid=cmd.uid, api_key=orphan.api_key)
        except (OutcomeUnknownError, PermanentError):
            answered = False
        # a lost answer, a refusal or an undocumented ``false``: list again after the settle delay
        (deleted if answered else unsure).append(orphan.api_key)
    # an earlier round's delete whose answer was lost: the listing shows the key gone now
    gone = sorted(unsure_before - {k.api_key for k in listed})
    detail = {"label": cmd.label, "orphans_deleted": [*deleted, *gone]}
    now = ctx.now_ms()
    # a key whose secret we never held may still have reached the upstream (a record lost after delivery): say it
    # is gone
    told = [
        outcome(record, "api_key.revoked", api_key, now, api_key=api_key, reason="secret not held")
        for api_key in [*deleted, *gone]
    ]
    if unsure:
        # an earlier unsure one still listed was tried again now: deleted, or unsure again
        details = pending.details.model_copy(update={"orphans_unsure": sorted(unsure)})
        restarted = pending.model_copy(update={"started_at_ms": now, "details": details})
        ctx.commit(
            record.model_copy(update={"pending": restarted}),
            journal=[(JournalAction.ORPHAN_KEYS_PENDING, detail)],
            outbound=told,
        )
        overdue = retry_overdue(restarted, now, ctx.services.policy)
        if overdue is not None:  # kept with the block: a retry deletes the orphans before it issues a key
            fail(ctx, *overdue, keep_intent=True)
        return
    # issued again (its first attempt's moment kept), unless every attempt failed for the bound
    not_done(
        ctx,
        record,
        JournalAction.NOT_COMMITTED if not (deleted or gone) else JournalAction.ORPHAN_KEYS_DELETED,
        detail,
        outbound=told,
    )


def update_api_key(cmd: UpdateApiKey, ctx: StepContext) -> None:
    """Modify SubAccount API: whole replacement of whitelist and permissions, so repeating it is the resolution."""
    ctx.write_intent(
        IntentKind.UPDATE_KEY,
        cmd.api_key,
        UpdateKeyDetails(
            uid=cmd.uid,
            label=cmd.label,
            permissions=list(cmd.permissions),
            ip_whitelist=list(cmd.ip_whitelist),
        ),
    )
    try:
        ctx.exchange.api_keys.modify(
            uid=cmd.uid,
            api_key=cmd.api_key,
            ip_whitelist=cmd.ip_whitelist,
            permissions=[Permission(p) for p in cmd.permissions],
            label=cmd.label,
        )
    except PermanentError as exc:
        fail(ctx, steps.update(cmd.api_key), f"the exchange refused to update the key: {exc}")
        return
    now = ctx.now_ms()
    keys = tuple(
        k.model_copy(
            update={"permissions": cmd.permissions, "ip_whitelist": cmd.ip_whitelist, "access_in_doubt": False}
        )
        if k.api_key == cmd.api_key
        else k
        for k in ctx.record.keys
    )
    # what the key held before the update counts too (a narrowed key may have left money in futures)
    record = ctx.record.noting_futures().model_copy(update={"keys": keys}).noting_futures()
    ctx.settle(
        record,
        JournalAction.API_KEY_UPDATED,
        {"api_key": cmd.api_key, "permissions": list(cmd.permissions), "ip_whitelist": list(cmd.ip_whitelist)},
        outbound=[key_updated(record, cmd.api_key, cmd.permissions, cmd.ip_whitelist, now)],
    )


def revoke_api_key(cmd: RevokeApiKey, ctx: StepContext) -> None:
    """Delete SubAccount API. A refusal (e.g. the key is already gone) is checked by listing, not trusted. (A
    rotated-out key is planned for only once its successor reached the upstream: ``Reconciler._next_step``.)"""
    details = RevokeKeyDetails(uid=cmd.uid, reason=cmd.reason)
    ctx.write_intent(IntentKind.REVOKE_KEY, cmd.api_key, details)
    try:
        answered = ctx.exchange.api_keys.delete(uid=cmd.uid, api_key=cmd.api_key)
    except PermanentError as exc:
        refusal, error = exc.message, str(exc)
    else:
        if answered:
            _revoked(ctx, cmd.api_key, cmd.reason)
            return
        # ``false`` (its meaning undocumented): a refusal until a listing shows the key gone
        refusal = error = "the exchange answered false to the delete"
    pending = ctx.record.pending
    assert pending is not None
    refused = pending.model_copy(update={"details": details.model_copy(update={"refused": refusal[:200]})})
    ctx.commit(
        ctx.record.model_copy(update={"pending": refused}),
        journal=[(JournalAction.REFUSED, {"kind": "revoke_key", "token": cmd.api_key, "error": error})],
    )


def resolve_revoke(cmd: ResolveRevoke, ctx: StepContext) -> None:
    """List the keys: gone → revoked; still there → delete again (or block if the exchange keeps refusing, or every
    attempt failed for the bound: ``blocks.not_done``)."""
    ctx.heartbeat()
    present = any(k.api_key == cmd.api_key for k in ctx.exchange.api_keys.list(uid=cmd.uid))
    if not present:
        _revoked(ctx, cmd.api_key, cmd.reason)
        return
    pending = ctx.record.pending
    if pending is not None and isinstance(pending.details, RevokeKeyDetails) and pending.details.refused:
        fail(ctx, steps.revoke(cmd.api_key), f"the exchange refused to delete the key: {pending.details.refused}")
        return
    not_done(ctx, ctx.record, JournalAction.NOT_COMMITTED, {"kind": "revoke_key", "token": cmd.api_key})


def rotate_for_age(cmd: RotateForAge, ctx: StepContext) -> None:
    record = ctx.record.model_copy(update={"age_rotations": ctx.record.age_rotations + 1})
    ctx.settle(record, JournalAction.ROTATION_DUE_TO_AGE, {"generation": cmd.generation})


def _revoked(ctx: StepContext, api_key: str, reason: str) -> None:
    now = ctx.now_ms()
    keys = tuple(
        k.model_copy(update={"revoked_at_ms": now, "revoke_reason": reason, "sealed": None})
        if k.api_key == api_key
        else k
        for k in ctx.record.keys
    )
    record = ctx.record.model_copy(update={"keys": keys})
    ctx.settle(
        record,
        JournalAction.API_KEY_REVOKED,
        {"api_key": api_key, "reason": reason},
        outbound=[outcome(record, "api_key.revoked", api_key, now, api_key=api_key, reason=reason)],
        stats={"keys_active": -1, "keys_revoked": 1},
    )


def list_keys(cmd: ListKeys, ctx: StepContext) -> None:
    """Before closing: what keys the exchange lists for the sub-account. A live key we have no record of (its
    creation's answer was lost, and the listing showed it late) is recorded, and one we recorded revoked but the
    exchange still lists is live again: offboarding then revokes them before it closes."""
    ctx.heartbeat()
    listed = {k.api_key: k for k in ctx.exchange.api_keys.list(uid=cmd.uid)}
    now = ctx.now_ms()
    keys: list[KeyRecord] = []
    for key in ctx.record.keys:
        if key.live and key.api_key not in listed:
            keys.append(
                key.model_copy(update={"revoked_at_ms": now, "revoke_reason": "no longer listed", "sealed": None})
            )
        elif not key.live and key.api_key in listed:
            keys.append(key.model_copy(update={"revoked_at_ms": None, "revoke_reason": None}))
        else:
            keys.append(key)
    recorded = {k.api_key for k in ctx.record.keys}
    found = [k for k in listed.values() if k.api_key not in recorded]
    for unknown in found:
        keys.append(
            KeyRecord(
                generation=Naming.generation_of(unknown.label),
                label=unknown.label,
                api_key=unknown.api_key,
                permissions=tuple(sorted(unknown.permissions)),
                ip_whitelist=tuple(unknown.ip_whitelist),
                created_at_ms=unknown.created_at,
                sealed=None,
            )
        )
    ctx.commit(
        ctx.record.model_copy(update={"keys": tuple(keys), "keys_listed_at_ms": now}).noting_futures(),
        journal=[(JournalAction.KEYS_LISTED, {"live": sorted(listed), "unrecorded": [k.api_key for k in found]})],
    )
