"""Sub-account steps: create it under its pseudonymous name, or find out what became of a create.

A refused create is settled by listing our sub-accounts (the refusal may answer a repeat of a create whose response
was lost). Not found: a refusal for the broker's sub-account limit (``AccountLimitError``) blocks the step at once,
saying so and telling the upstream (``provisioning.failed``), and keeps the name (another name cannot help;
``provisioner customer retry`` creates it once KuCoin raised the cap); any other refusal means the name is taken
elsewhere or invalid: the next name is tried, up to ``MAX_NAME_ATTEMPTS`` (then blocked and told the same way).
"""

from __future__ import annotations

from handlers import steps
from handlers.commands import CreateSubAccount, ResolveSubAccount
from handlers.intents import CreateSubAccountDetails
from handlers.journal import JournalAction
from handlers.naming import MAX_NAME_ATTEMPTS
from handlers.records import IntentKind, SubAccountRecord
from worker.exchange import AccountLimitError, PermanentError
from worker.exchange.models import SubAccount
from worker.exchange.subaccounts import MAX_PAGE_SIZE, new_listing
from worker.provisioning.blocks import fail, not_done
from worker.provisioning.context import StepContext
from worker.provisioning.outbound import outcome

__all__ = ["account_limit_reason", "create_sub_account", "resolve_sub_account"]


def create_sub_account(cmd: CreateSubAccount, ctx: StepContext) -> None:
    """Add SubAccount under the name of this attempt. A refusal is *not* trusted to mean "taken by someone
    else": the intent stays, marked refused, and ``resolve_sub_account`` lists our sub-accounts to find out."""
    details = CreateSubAccountDetails(attempt=cmd.attempt)
    intent = ctx.write_intent(IntentKind.CREATE_SUB_ACCOUNT, cmd.account_name, details)
    try:
        created = ctx.exchange.sub_accounts.add(account_name=cmd.account_name)
    except PermanentError as exc:
        marked: dict[str, object] = {"refused": exc.message[:200]}
        if isinstance(exc, AccountLimitError):
            marked["account_limit"] = True
        refused = intent.model_copy(update={"details": details.model_copy(update=marked)})
        ctx.commit(
            ctx.record.model_copy(update={"pending": refused}),
            journal=[(JournalAction.REFUSED, {"kind": intent.kind.value, "token": intent.token, "error": str(exc)})],
        )
        return
    _adopt(ctx, created, how="created")


def resolve_sub_account(cmd: ResolveSubAccount, ctx: StepContext) -> None:
    """List our sub-accounts for the intent's name. Ours → adopt it. Absent after a refusal → the name is taken
    by someone else (or invalid): next attempt. Absent after a lost response → it never happened: create again
    (the same name: its first attempt's moment kept), unless every attempt failed for the bound
    (``blocks.not_done``)."""
    found = _find_by_name(ctx, cmd.account_name)
    if found is not None:
        _adopt(ctx, found, how="found")
        return
    record = ctx.record
    pending = record.pending
    assert pending is not None and isinstance(pending.details, CreateSubAccountDetails)
    refusal = pending.details.refused
    if not refusal:
        not_done(ctx, record, JournalAction.NOT_COMMITTED, {"kind": pending.kind.value, "token": pending.token})
        return
    if pending.details.account_limit:
        fail(ctx, steps.SUBACCOUNT, account_limit_reason(refusal))
        return
    if cmd.attempt + 1 >= MAX_NAME_ATTEMPTS:
        fail(ctx, steps.SUBACCOUNT, f"the exchange refused all {MAX_NAME_ATTEMPTS} name attempts; last: {refusal}")
        return
    ctx.settle(
        record.model_copy(update={"name_attempt": cmd.attempt + 1}),
        JournalAction.NAME_UNAVAILABLE,
        {"account_name": cmd.account_name, "attempt": cmd.attempt, "error": refusal},
    )


def account_limit_reason(refusal: str) -> str:
    """The block reason of a create refused for the broker's sub-account limit: the cause and what fixes it."""
    return (
        f"the broker's sub-account limit is reached (the exchange said: {refusal}); no name was tried after it: have "
        "KuCoin raise the limit (`provisioner exchange info` shows accountSize), then `provisioner customer retry`"
    )


def _find_by_name(ctx: StepContext, name: str) -> SubAccount | None:
    """The sub-account named ``name``, read page by page until found; ``None`` only when the pages hold every
    sub-account the exchange counts (else read again with other page boundaries: ``SubAccounts.list_complete``,
    which raises ``RetryableError`` rather than answer "not found" from a listing with a gap)."""
    accounts = ctx.exchange.sub_accounts
    listing = new_listing()
    listing.pass_started()
    for page in accounts.pages(page_size=MAX_PAGE_SIZE):
        ctx.heartbeat()
        listing.add(page)
        for sub in page.items:
            if sub.account_name == name:
                return sub
    if listing.complete:
        return None
    found = accounts.list_complete(seen=listing, before_page=ctx.heartbeat)
    return next((sub for sub in found if sub.account_name == name), None)


def _adopt(ctx: StepContext, sub: SubAccount, *, how: str) -> None:
    now = ctx.now_ms()
    update: dict[str, object] = {
        "sub_account": SubAccountRecord(uid=sub.uid, account_name=sub.account_name, created_at_ms=sub.created_at)
    }
    if how == "found" and ctx.services.store.guard.audit_epoch is not None:
        update["audited_epoch"] = None  # after a loss, a sub-account we find may hold keys and money: audit it
    record = ctx.record.model_copy(update=update)
    ctx.settle(
        record,
        JournalAction.SUB_ACCOUNT_CREATED,
        {"uid": sub.uid, "account_name": sub.account_name, "how": how},
        outbound=[outcome(record, "sub_account.created", sub.uid, now, uid=sub.uid, account_name=sub.account_name)],
    )
