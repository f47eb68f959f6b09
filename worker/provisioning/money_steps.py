"""Money steps: fund a sub-account, sweep it back, read a transfer's final status, settle a lost transfer.

A transfer is settled only on evidence nothing else can produce — the exchange's record of *our* transfer. A
balance never is: the customer trades and deposits on the very sub-account we fund.

==========================================  ====================================================================
what the exchange says                      what it proves, and what follows
==========================================  ====================================================================
an orderId                                  accepted: ``ACCEPTED`` (counts as moved for the caps); Get Transfer
                                            History then says SUCCESS (committed, told upstream), FAILURE
                                            (nothing moved: the line is blocked for a retry under a new
                                            clientOid) or PROCESSING (read again later)
"clientOid duplicated"                      a transfer under our clientOid exists: committed
another refusal of a first send             nothing moved: the line is blocked (an operator's retry sends it
                                            under a new clientOid); the daily reservation is released
another refusal of a re-send, or of a       no evidence either way (the exchange may check the balance before
send that may repeat a lost one             the clientOid; the lost send may have taken it): the ledger decides;
                                            its silence sends the line to an operator (counted in doubt), unless
                                            an operator said the lost send moved nothing
no answer (time-out, 5xx, crash)            the intent stays; after the settle delay: re-sent under the same
                                            clientOid where the exchange deduplicates or refuses repeats
                                            (``dedupe``/``reject``) until PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS
                                            after the first send, else judged from the Special Account's
                                            ledger (``handlers.settlement``); undecided → an operator's verdict
                                            (a sweep is recorded unconfirmed instead: moving back what is there
                                            is harmless, the next round reads the balances again; unanswered
                                            round after round for PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS, the
                                            sweep is blocked); not there →
                                            sent again under the same clientOid, unless every send failed for
                                            PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS since the first: then an
                                            operator decides (manual block, counted in doubt meanwhile)
==========================================  ====================================================================
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from decimal import Decimal

from handlers import steps
from handlers.commands import (
    ConfirmTransfer,
    LookForTransfer,
    ReadBalances,
    RecheckTransfer,
    RefuseFunding,
    ResolveTransfer,
    Transfer,
)
from handlers.daily_cap import (
    AGAIN,
    DAY_MS,
    LEDGER_MAX_WINDOW_MS,
    LEDGER_SKEW_MS,
    again_by_day,
    days_between,
    executed_on,
    may_have_refused,
    reservation_days,
    utc_day,
)
from handlers.journal import JournalAction
from handlers.planner import MAX_ATTEMPTS, repeat_overdue
from handlers.records import (
    BalanceSnapshot,
    Evidence,
    Intent,
    IntentKind,
    TransferIntent,
    TransferPurpose,
    TransferRecord,
    TransferStatus,
)
from handlers.refusals import daily_cap_reason, refusal_identity
from handlers.settlement import (
    Judgement,
    LedgerRow,
    Verdict,
    count_second_payments,
    judge_by_ledger,
    second_payment_times,
)
from worker.exchange import DuplicateClientOidError, PermanentError, RateLimitedError
from worker.exchange.models import AccountType, Direction, LedgerEntry, TransferDetail
from worker.exchange.scope import CallScope, Preadmission
from worker.provisioning.blocks import fail, not_done
from worker.provisioning.caps_steps import daily_use_in_ledger
from worker.provisioning.context import StepContext
from worker.provisioning.outbound import outcome
from worker.provisioning.waits import DAILY_CAP_WAIT, own_wait
from worker.store.riders import Rider, RiderRefused
from worker.store.transfer_facts import TransferFact

__all__ = [
    "confirm_transfer",
    "look_for_transfer",
    "read_balances",
    "recheck_transfer",
    "refuse_funding",
    "resolve_transfer",
    "transfer",
]

MAX_ORDER_LOOKUPS = 300
"""Transfers looked up to attribute ledger entries, at most, per run (the next run goes on from what was read)."""
MAX_CONFIRM_POLL_MS = 10 * 60_000
PROCESSING_LIMIT_MS = 60 * 60_000
"""An accepted transfer still PROCESSING (or unknown to its history) after this long goes to an operator."""
_OTHER_BUSINESS = ("deposit", "withdraw", "exchange", "trade", "bonus", "rebate", "fee", "margin", "loan", "earn")
"""Ledger ``bizType`` words that are never a broker transfer (KuCoin's exact name for one is not documented)."""
_STATUS_READ = "get_transfer"
"""The endpoint of Get Transfer History (one transfer's status), read ahead of the confirm step."""


def transfer(cmd: Transfer, ctx: StepContext) -> None:
    """Look first where a lost earlier send may exist and only the ledger can tell, reserve the day's cap (funding
    only), record the intent, transfer. See the module table for every answer."""
    s = ctx.services
    now = ctx.now_ms()
    details = TransferIntent(
        key=cmd.key,
        purpose=TransferPurpose(cmd.purpose),
        uid=cmd.uid,
        currency=cmd.currency,
        amount=cmd.amount,
        direction=cmd.direction,
        sub_wallet=cmd.sub_wallet,
        broker_wallet=cmd.broker_wallet,
        day=utc_day(now),
        attempt=cmd.attempt,
        first_sent_ms=_window_start(now, cmd),
        evidence_first=cmd.evidence_first,
        operator_unsent=cmd.operator_unsent,
        earlier_send_ms=cmd.earlier_send_ms,
        twins=cmd.twins,
        sent_ms=now,
    )
    if cmd.evidence_first and not s.resend_is_evidence:
        # our record of an earlier send may be lost, and the exchange may execute a repeat: the ledger first
        searched = _attempts(ctx, cmd.key, cmd.client_oid)
        judgement = _judge(ctx, details, searched)
        if judgement.verdict is not Verdict.NOT_COMMITTED:
            if judgement.verdict is Verdict.UNDECIDED:
                details = details.model_copy(update={"candidates": _candidates(ctx, cmd.client_oid, searched)})
            intent = Intent(kind=IntentKind.TRANSFER, token=cmd.client_oid, started_at_ms=now, details=details)
            if judgement.verdict is Verdict.COMMITTED:
                _found(ctx, details, intent, judgement, searched)
            else:
                ctx.record = ctx.record.model_copy(update={"pending": intent})
                _undecided(ctx, details, cmd.client_oid, judgement)
            return
        # the ledger showed nothing of an earlier send, but one may still show later (a ledger slower than its
        # bound): this send is searched for a second payment from the window's start (``recheck_transfer``)
        details = details.model_copy(
            update={
                "evidence_first": False,
                "first_sent_ms": cmd.earlier_send_ms or now,
                "earlier_send_ms": cmd.earlier_send_ms or details.first_sent_ms,
            }
        )
    if cmd.refusal is not None:  # the planner turns it away (the per-customer cap, offboarded, ...): it is not sent
        _refused_unsent(ctx, details, cmd.client_oid, cmd.refusal)
        return
    riders: list[Rider] = []
    send_at = ctx.now_ms()  # the ledger's judgement may have taken minutes: the days are the send's, not the step's
    unreserved = details
    if details.purpose is TransferPurpose.FUND:
        reserved = _reserve(ctx, details, send_at)
        if isinstance(reserved, str):
            _refused_unsent(ctx, details, cmd.client_oid, reserved)
            return
        details, riders = reserved
    try:
        ctx.write_intent(IntentKind.TRANSFER, cmd.client_oid, details, riders=riders)
    except RiderRefused as refused:  # a day's cap cannot take the line: nothing was recorded
        day = details.days[len(details.days) - len(riders) + refused.value - 1]
        reason = _cap_refusal(ctx, details, day)
        if day != utc_day(send_at):
            raise _wait_out(day, send_at, reason) from None
        _refused_unsent(ctx, unreserved, cmd.client_oid, reason)
        return
    _send(ctx, details, cmd.client_oid, resend=False)


def _refused_unsent(ctx: StepContext, details: TransferIntent, client_oid: str, reason: str) -> None:
    """A cap (the day's, or the customer's) or the planner turns a funding line away before it is sent: refused, told
    ``funding.refused`` — unless the send would repeat an earlier one that may have gone through
    (``earlier_send_ms``: the ledger showed nothing of it, and a ledger slower than its bound shows it late) and no
    operator said it moved nothing. The cap's refusal says nothing of that earlier send, so the line is blocked for
    an operator (``provisioner customer settle-transfer``) instead, counted in doubt by the per-customer cap, the
    day reservations of its earlier sends kept."""
    if not details.earlier_send_ms or details.operator_unsent:
        refuse_funding(
            RefuseFunding(key=details.key, currency=details.currency, amount=details.amount, reason=reason), ctx
        )
        return
    intent = Intent(kind=IntentKind.TRANSFER, token=client_oid, started_at_ms=ctx.now_ms(), details=details)
    ctx.record = ctx.record.model_copy(update={"pending": intent})
    why = (
        f"{reason}, but an earlier send of line {details.key} may have gone through (the ledger showed nothing of "
        "it; a ledger slower than PROVISIONER_LEDGER_LAG_MS would show it late): refusing the line could tell the "
        "upstream 'refused' for money that moved"
    )
    _undecided(ctx, details, client_oid, Judgement(Verdict.UNDECIDED, why))


def _wait_out(day: str, now: int, reason: str) -> RateLimitedError:
    """A day's cap the send only may count on (the previous day's in the skew after midnight, the next day's just
    before it) refused the line: not a refusal of the line, whose own day may have room, but a wait until the send
    can no longer count on that day. The cap is our quota, not the exchange's: the wait is reported under its own
    name (``DAILY_CAP_WAIT``: the run ends rate limited, the customer is due then, no exchange pool is named)."""
    today_start = now // DAY_MS * DAY_MS
    until = today_start + LEDGER_SKEW_MS + 1 if day < utc_day(now) else today_start + DAY_MS
    why = f"{reason}; the line may count on that day only around midnight: waiting until it cannot"
    return own_wait(DAILY_CAP_WAIT, why, until - now)


def _window_start(now: int, cmd: Transfer) -> int:
    """From when the ledger is searched for this line's transfer: the earliest moment a send of it may have gone
    through (after a loss, or before an operator's not-committed), else now."""
    starts = [now]
    if cmd.evidence_first and cmd.since_ms is not None:
        starts.append(cmd.since_ms)
    if cmd.earlier_send_ms:
        starts.append(cmd.earlier_send_ms)
    return min(starts)


def resolve_transfer(cmd: ResolveTransfer, ctx: StepContext) -> None:
    """Settle the pending transfer from the exchange's record of it; never from a balance. A re-send is that
    record where the exchange deduplicates or refuses repeats — but not once the sends went unanswered for
    ``Policy.unknown_outcome_max_ms`` (``repeat_overdue``): the ledger decides then, as in the other modes."""
    pending = ctx.record.pending
    assert pending is not None
    details = TransferIntent.of(pending)
    token = pending.token
    if details.duplicate:
        _settle_duplicate(ctx, details, pending)
        return
    overdue = repeat_overdue(pending, ctx.now_ms(), ctx.services.policy)
    if ctx.services.resend_is_evidence and details.refused is None and not overdue:
        resent = details.model_copy(update={"sends": details.sends + 1, "sent_ms": ctx.now_ms()})
        reserved = _reserve(ctx, resent, ctx.now_ms()) if details.purpose is TransferPurpose.FUND else (resent, [])
        if not isinstance(reserved, str):  # a re-send may pay today: today's cap must take it, else ask the ledger
            resent, riders = reserved
            try:
                ctx.write_intent(IntentKind.TRANSFER, token, resent, riders=riders)
            except RiderRefused:
                pass  # today's cap cannot take it: nothing was recorded, the ledger decides (below)
            else:
                _send(ctx, resent, token, resend=True)
                return
    judgement = _judge(ctx, details, {token})
    if judgement.verdict is Verdict.COMMITTED:
        _found(ctx, details, pending, judgement, {token})
    elif judgement.verdict is Verdict.UNDECIDED:
        _undecided(ctx, details, token, judgement)
    elif details.refused is not None and not details.operator_unsent:
        # a send that may repeat a lost one (a re-send, or one after the ledger said the lost one moved nothing) was
        # refused: the lost one may be why (it took the balance: the exchange may check it before the clientOid)
        # and the ledger may be slower than its bound; its silence is not enough to tell the upstream "refused"
        # for money that may have moved. (An operator's word that nothing moved is the operator's call.)
        why = (
            f"the exchange refused a send that may repeat an earlier, lost one ({details.refused}) and the ledger "
            "shows neither"
        )
        _undecided(ctx, details, token, Judgement(Verdict.UNDECIDED, why))
    elif details.refused is not None:
        # sent on an operator's word that nothing moved, refused, and the ledger shows nothing of ours: it stands
        _refused(ctx, details, token, details.refused)
    elif details.purpose is TransferPurpose.SWEEP:
        # the Special Account's ledger may list a sweep only once it completes (the broker's side is credited
        # then): its silence proves nothing of one still PROCESSING. Recorded unconfirmed (told as such at the
        # close); the next round reads the balances again and moves back what is there
        why = f"the ledger lists a sweep only once it completes, and shows none yet ({judgement.reason})"
        _undecided(ctx, details, token, Judgement(Verdict.UNDECIDED, why))
    else:
        # a funding line, sent again: should the ledger be slower than its bound, a double is searched for later
        record = ctx.record
        earlier = min(details.first_sent_ms, record.earlier_sends.get(details.key, details.first_sent_ms))
        # an operator's word that the clientOid moved nothing was about the sends before it, not this one: this send
        # may have paid (a ledger slower than its bound), so a refusal of the line now asks again
        unsent = tuple(oid for oid in record.unsent_by_operator if oid != token)
        record = record.model_copy(
            update={"earlier_sends": {**record.earlier_sends, details.key: earlier}, "unsent_by_operator": unsent}
        )
        # sent again under the same clientOid (its first send's moment kept), unless every send failed for the bound
        not_done(
            ctx, record, JournalAction.NOT_COMMITTED, {"kind": "transfer", "token": token, "evidence": judgement.reason}
        )


def _settle_duplicate(ctx: StepContext, details: TransferIntent, pending: Intent) -> None:
    """The exchange holds a transfer under our clientOid; the ledger says whether it moved money (a FAILED one is
    not in it)."""
    token = pending.token
    judgement = _judge(ctx, details, {token})
    if judgement.verdict is Verdict.COMMITTED:
        _found(ctx, details, pending, judgement, {token})
    elif judgement.verdict is Verdict.NOT_COMMITTED and details.operator_unsent:
        # an operator said nothing moved under this clientOid and the ledger agrees: the transfer the exchange
        # holds under it failed
        _burn(
            ctx, details, token, f"an operator said nothing moved under it, and the ledger agrees ({judgement.reason})"
        )
    elif judgement.verdict is Verdict.NOT_COMMITTED:
        why = (
            f"the exchange holds a transfer under clientOid {token}, but the ledger shows no money moved under it: "
            "it FAILED, or is still processing; ask KuCoin for its status (--not-committed then sends the line "
            "under a new clientOid)"
        )
        _undecided(ctx, details, token, Judgement(Verdict.UNDECIDED, why))
    else:
        # the ledger cannot tell: a second not-committed from an operator who read this transfer's status spends
        # the clientOid (``operator.settle_transfer`` on a block whose intent saw the duplicate)
        why = (
            f"the exchange holds a transfer under clientOid {token} and the ledger cannot tell whether it moved money "
            f"({judgement.reason}); ask KuCoin for its status: --not-committed (it FAILED) sends the line under a new "
            "clientOid"
        )
        _undecided(ctx, details, token, Judgement(Verdict.UNDECIDED, why))


def look_for_transfer(cmd: LookForTransfer, ctx: StepContext) -> None:
    """After a loss, before an unrecorded line is decided (against the per-customer cap, or refused at
    offboarding): was it paid? Ask the ledger only; never send."""
    now = ctx.now_ms()
    details = TransferIntent(
        key=cmd.key,
        purpose=TransferPurpose.FUND,
        uid=cmd.uid,
        currency=cmd.currency,
        amount=cmd.amount,
        direction="OUT",
        sub_wallet=ctx.services.policy.sub_wallet,
        broker_wallet=ctx.services.policy.broker_wallet,
        day=utc_day(now),
        first_sent_ms=cmd.since_ms,
        evidence_first=True,
        twins=cmd.twins,
    )
    judgement = _judge(ctx, details, set(cmd.client_oids))
    exact = judgement.verdict is Verdict.COMMITTED and judgement.client_oid is not None
    if not cmd.may_eliminate and judgement.verdict is not Verdict.NOT_COMMITTED and not exact:
        # the ledger could tie a transfer to this line only by elimination, or could not tell: a line the upstream
        # has not re-published yet may own it, so the line waits for the declaration (nothing sent, no operator)
        record = ctx.record.model_copy(update={"awaiting_republication": (*ctx.record.awaiting_republication, cmd.key)})
        why = {"key": cmd.key, "evidence": judgement.reason}
        ctx.commit(record, journal=[(JournalAction.TRANSFER_AWAITS_REPUBLICATION, why)])
        return
    held_for = _refusable_by(ctx, cmd) if judgement.verdict is Verdict.COMMITTED and not exact else None
    eliminated = held_for is not None
    ask = judgement.verdict is Verdict.UNDECIDED or (judgement.verdict is not Verdict.COMMITTED and cmd.ask_if_unfound)
    if ask or eliminated:
        details = details.model_copy(update={"candidates": _candidates(ctx, cmd.client_oids[0], cmd.client_oids)})
    if eliminated:
        _count_order_today(ctx, details, judgement.order_id)
    intent = Intent(kind=IntentKind.TRANSFER, token=cmd.client_oids[0], started_at_ms=now, details=details)
    if eliminated:
        ctx.record = ctx.record.model_copy(update={"pending": intent})
        fail(ctx, _step(details), _eliminated_reason(details, judgement, held_for or ""), manual=True)
    elif judgement.verdict is Verdict.COMMITTED:
        _found(ctx, details, intent, judgement, cmd.client_oids)
    elif judgement.verdict is Verdict.UNDECIDED:
        ctx.record = ctx.record.model_copy(update={"pending": intent})
        _undecided(ctx, details, intent.token, judgement)
    elif ask:
        ctx.record = ctx.record.model_copy(update={"pending": intent})
        fail(ctx, _step(details), _verdict_unknown_reason(details, judgement), manual=True)
    else:
        record = ctx.record.model_copy(update={"looked_for": (*ctx.record.looked_for, cmd.key)})
        ctx.commit(record, journal=[(JournalAction.TRANSFER_NOT_FOUND, {"key": cmd.key, "evidence": judgement.reason})])


def _refusable_by(ctx: StepContext, cmd: LookForTransfer) -> str | None:
    """Which cap could have refused the line before the loss had the transfer tied to it by elimination been
    another line's (``None``: none could): the per-customer cap (the planner says), else the Special Account's
    daily cap of a day the line may have been decided on, each day's use read from the ledger up to the loss."""
    if cmd.ask_if_eliminated:
        return "the per-customer cap"
    if cmd.customer_cap_room is not None:
        unexplained = _unexplained_to_sub_account(ctx, cmd)
        if unexplained + cmd.amount > cmd.customer_cap_room:
            return (
                f"the per-customer cap ({unexplained} {cmd.currency} moved to the sub-account that no line we know "
                "explains)"
            )
    if cmd.day_caps_until_ms is None:
        return None
    end = min(cmd.day_caps_until_ms, ctx.now_ms())
    if cmd.since_ms > end:
        return None
    cap = ctx.services.daily_caps.get(cmd.currency)
    if cap is None:
        used = {day: Decimal(0) for day, _, _ in days_between(cmd.since_ms, end)}
    else:
        used = daily_use_in_ledger(ctx.ledger_reads, cmd.currency, cmd.since_ms, end, heartbeat=ctx.heartbeat)
    day = may_have_refused(amount=cmd.amount, cap=cap, used=used)
    if day is None:
        return None
    return f"the Special Account's daily cap of {day} ({used[day]} of {cap} {cmd.currency} used that day)"


def _unexplained_to_sub_account(ctx: StepContext, cmd: LookForTransfer) -> Decimal:
    """Every transfer of ``cmd``'s currency the Special Account's ledger shows moved to the line's sub-account since
    the line's first possible send, whatever its amount, that no transfer we hold explains (the one tied to the
    line by elimination among them). Raises as ``_counterparties``."""
    ctx.heartbeat()
    entries = ctx.ledger_reads.ledger_entries(
        currency=cmd.currency, direction="out", start_ms=cmd.since_ms - LEDGER_SKEW_MS, end_ms=ctx.now_ms()
    )
    known = {t.order_id for t in ctx.record.transfers.values() if t.order_id is not None}
    unknown: dict[str, Decimal] = {}
    for entry in entries:
        order_id, _ = _ids(entry)
        if order_id is not None and order_id not in known and not _other_business(entry):
            unknown[order_id] = abs(entry.amount)
    to = _counterparties(ctx, list(unknown), "OUT")
    return sum((amount for order_id, amount in unknown.items() if to.get(order_id) == cmd.uid), Decimal(0))


def _eliminated_reason(details: TransferIntent, judgement: Judgement, cap: str) -> str:
    return (
        f"line {details.key} ({details.amount} {details.currency}) was asked for before our state was lost; the "
        f"exchange shows a transfer no line we know explains ({judgement.reason}), but not whose it is: it may be a "
        f"line the upstream has not re-published yet, this line then refused before the loss by {cap} "
        "(only we and the upstream knew). Ask the upstream which verdict it heard for this line, then decide with "
        f"`provisioner customer settle-transfer` (--committed --order-id {judgement.order_id}: it was this line's; "
        "--refused: it was refused)"
    )


def _verdict_unknown_reason(details: TransferIntent, judgement: Judgement) -> str:
    return (
        f"line {details.key} ({details.amount} {details.currency}) was asked for before our state was lost and the "
        f"exchange shows no transfer of it ({judgement.reason}), but it may have been refused before the loss (by "
        "an operator, a cap, its attempts running out: only we and the upstream knew). Give `provisioner recover "
        "--heard FILE` the funding outcomes the upstream received, or decide with `provisioner customer "
        "settle-transfer` (--not-committed: send it; --refused: it was refused)"
    )


def confirm_transfer(cmd: ConfirmTransfer, ctx: StepContext) -> None:
    """Get Transfer History for an accepted transfer: SUCCESS → committed, FAILURE → nothing moved, PROCESSING →
    read again later; still not final after ``PROCESSING_LIMIT_MS`` → an operator decides. The lock is renewed
    before each read or wait; an answer already read ahead (``StatusPrefetch.ready``) needs none: the commit that
    follows is fenced and renews it."""
    entry = ctx.record.transfers[cmd.key]
    prefetch = ctx.services.prefetch
    if prefetch is None or not prefetch.ready(cmd.order_id):
        ctx.heartbeat()  # a request, or the wait for one, comes first; a status at hand goes straight to the commit
    now = ctx.now_ms()
    try:
        detail = _prefetched(ctx, cmd.order_id)
        if detail is None:
            if prefetch is not None:
                ctx.heartbeat()  # the wait for a prefetched read may have taken a request's time already
            detail = ctx.exchange.transfers.get(order_id=cmd.order_id)
    except PermanentError as exc:
        # the exchange does not (yet) know the order it gave us: look again later, never guess
        status, why = "UNKNOWN", f"the exchange does not show order {cmd.order_id}: {exc}"
    else:
        status, why = str(detail.status), f"order {cmd.order_id} is {detail.status}"
        if status == "SUCCESS":
            if entry.recheck_from_ms and entry.this_send_ms and detail.created_at < entry.this_send_ms - LEDGER_SKEW_MS:
                # the exchange answered our repeat with an order it made before: deduplicated, no second payment
                entry = entry.model_copy(update={"recheck_from_ms": 0})
            entry = _counted_on_execution_day(ctx, entry, detail.created_at)
            _commit(ctx, entry, evidence=Evidence.HISTORY, note=None)
            return
        if status == "FAILURE":
            _failed(ctx, entry, detail.reason or "no reason given", created_at_ms=detail.created_at)
            return
    if now - entry.at_ms >= PROCESSING_LIMIT_MS:
        _stuck(ctx, entry, f"{why} {int((now - entry.at_ms) / 60_000)} minutes after it was accepted")
        return
    _check_later(ctx, entry, now, why)


def _counted_on_execution_day(ctx: StepContext, entry: TransferRecord, created_at_ms: int) -> TransferRecord:
    """A funding transfer of one send, executed at ``created_at_ms`` (the exchange's time): counted on that day's
    cap. A send near midnight reserved on both days (``_reserve``): the other day's reservation is given back; one
    executed on a day it holds none of (later than a request can be on its way) counts there, whatever the cap
    says — the money moved. Returns the entry with the days it now holds. A line that may have been sent more than
    once (``recheck_from_ms``) keeps every reservation it holds."""
    if entry.purpose is not TransferPurpose.FUND:
        return entry
    held = entry.reserved_days
    spare, missing = executed_on(held, created_at_ms)
    if missing is not None:
        line = ledger_line(ctx.ref, entry.key)
        ctx.services.ledger.reserve(day=missing, line=line, currency=entry.currency, amount=entry.amount, cap=None)
        return entry.model_copy(update={"days": (*held, missing)})
    if spare and not entry.recheck_from_ms:
        _release(ctx, entry.key, spare)
        return entry.model_copy(update={"days": tuple(day for day in held if day not in spare)})
    return entry


def recheck_transfer(cmd: RecheckTransfer, ctx: StepContext) -> None:
    """A line was sent again while an earlier send of it may have gone through: does the ledger show a second
    payment? Then it is flagged (a block for an operator, ``provisioning.failed``) and the exchange is distrusted
    (no more re-sends as evidence, no more "not committed" from the ledger's silence) — a wrong clientOid setting
    or a ledger slower than its bound is never silent. Searched twice: after the settle delay, and ten times
    later."""
    entry = ctx.record.transfers[cmd.key]
    now = ctx.now_ms()
    policy = ctx.services.policy
    sub = ctx.record.sub_account
    assert sub is not None
    details = TransferIntent(
        key=entry.key,
        purpose=entry.purpose,
        uid=sub.uid,
        currency=entry.currency,
        amount=entry.amount,
        direction="OUT",
        sub_wallet=entry.sub_wallet,
        broker_wallet=policy.broker_wallet,
        day=entry.day or utc_day(now),
        first_sent_ms=entry.recheck_from_ms,
    )
    rows, unexplained, siblings = _ledger_rows(ctx, details)
    client_oids = _attempts(ctx, entry.key, entry.client_oid or "")
    known = {t.order_id for t in ctx.record.transfers.values() if t.order_id is not None}
    extra = count_second_payments(
        client_oids=client_oids,
        uid=sub.uid,
        rows=rows,
        known_order_ids=known,
        unexplained_commits=unexplained,
        siblings_in_doubt=siblings,
        own_order_unknown=entry.order_id is None,
    )
    if extra is None and entry.operator_unsent:
        # sent again on an operator's word that nothing moved, and the ledger cannot tell: the operator's call
        done = entry.model_copy(update={"recheck_at_ms": 0})
        ctx.commit(
            ctx.record.model_copy(update={"transfers": {**ctx.record.transfers, entry.key: done}}),
            journal=[
                (
                    JournalAction.TRANSFER_RECHECKED,
                    {"key": entry.key, "second_payments": None, "why": "operator's verdict"},
                )
            ],
        )
        return
    if extra is None:
        why = (
            f"line {entry.key} was sent again while an earlier send of it may have gone through, and the ledger "
            f"cannot tell whether {entry.amount} {entry.currency} was paid twice (entries without ids, or too many "
            "to read): check the sub-account's transfers with KuCoin, then `provisioner customer retry` to "
            "acknowledge"
        )
        # counted as paid twice by both caps: it may have been
        _count_again(ctx, entry, 1)
        done = entry.model_copy(
            update={
                "recheck_at_ms": 0,
                "note": "not verifiable: see the block",
                "extra_paid": 1,
                "extra_unverified": True,
            }
        )
        ctx.record = ctx.record.model_copy(update={"transfers": {**ctx.record.transfers, entry.key: done}})
        fail(ctx, steps.double(entry.key), why, second_payments=None)
        return
    if extra:
        why = (
            f"the ledger shows {extra} more transfer(s) of {entry.amount} {entry.currency} to the customer's "
            f"sub-account for line {entry.key} than the one we made (order {entry.order_id}): the line was paid more "
            f"than once. The exchange contradicted the settings (PROVISIONER_CLIENT_OID_BEHAVIOUR="
            f"{ctx.services.client_oid_behaviour}, or a ledger slower than PROVISIONER_LEDGER_LAG_MS); transfers are "
            "now settled as if its behaviour were unknown. Get the money back, fix the setting, then `provisioner "
            "state trust`"
        )
        ctx.services.store.guard.distrust(why)
        executed_at = second_payment_times(client_oids=client_oids, uid=sub.uid, rows=rows, known_order_ids=known)
        _count_again(ctx, entry, extra, executed_at)
        done = entry.model_copy(
            update={"recheck_at_ms": 0, "note": "paid more than once (see the block)", "extra_paid": extra}
        )
        ctx.record = ctx.record.model_copy(update={"transfers": {**ctx.record.transfers, entry.key: done}})
        fail(ctx, steps.double(entry.key), why, second_payments=extra)
        return
    later = 0 if entry.rechecks >= 1 else now + 10 * (policy.transfer_resolve_delay_ms or policy.resolve_delay_ms)
    checked = entry.model_copy(update={"recheck_at_ms": later, "rechecks": entry.rechecks + 1})
    ctx.commit(
        ctx.record.model_copy(update={"transfers": {**ctx.record.transfers, entry.key: checked}}),
        journal=[(JournalAction.TRANSFER_RECHECKED, {"key": entry.key, "second_payments": extra, "next_ms": later})],
    )


def _count_again(ctx: StepContext, entry: TransferRecord, times: int, executed_at: Sequence[int] = ()) -> None:
    """The Special Account's cap of each day the line was (or may have been) paid again counts it: money that
    moved, counted whatever the cap says (the line's own reservation counts it once). ``executed_at``: when the
    ledger entries that may be the second payments executed (none: the ledger cannot tell, every day the line
    holds counts ``times``) — ``daily_cap.again_by_day``. Idempotent: a recheck run again after a crash reserves
    nothing more."""
    line = ledger_line(ctx.ref, entry.key) + AGAIN
    for day, count in again_by_day(times, executed_at, entry.reserved_days, ctx.now_ms()).items():
        ctx.services.ledger.reserve(day=day, line=line, currency=entry.currency, amount=entry.amount * count, cap=None)


def refuse_funding(cmd: RefuseFunding, ctx: StepContext) -> None:
    """Record the line refused and tell the upstream. A block of the line (the exchange refused it, or it failed)
    is settled by the refusal: nothing of it moved."""
    now = ctx.now_ms()
    record = ctx.record
    blocked = record.blocked.get(steps.fund(cmd.key))
    if blocked is not None and not blocked.manual:
        record = record.model_copy(
            update={"blocked": {k: v for k, v in record.blocked.items() if k != steps.fund(cmd.key)}}
        )
    entry = TransferRecord(
        key=cmd.key,
        purpose=TransferPurpose.FUND,
        client_oid=None,
        currency=cmd.currency,
        amount=cmd.amount,
        sub_wallet=ctx.services.policy.sub_wallet,
        status=TransferStatus.REFUSED,
        note=cmd.reason,
        at_ms=now,
    )
    record = record.model_copy(update={"transfers": {**record.transfers, cmd.key: entry}})
    # nothing of it moved: a reservation it holds (one made in a commit the rate limiter then stopped, of an intent
    # never written; near midnight, of the next day too) is given back
    _release(ctx, cmd.key, (utc_day(now - DAY_MS), utc_day(now), utc_day(now + DAY_MS)))
    ctx.settle(
        record,
        JournalAction.FUNDING_REFUSED,
        {"key": cmd.key, "currency": cmd.currency, "amount": str(cmd.amount), "reason": cmd.reason},
        outbound=[
            outcome(
                record,
                "funding.refused",
                refusal_identity(record, cmd.key),
                now,
                key=cmd.key,
                currency=cmd.currency,
                amount=str(cmd.amount),
                reason=cmd.reason,
            )
        ],
    )


def read_balances(cmd: ReadBalances, ctx: StepContext) -> None:
    ctx.heartbeat()
    balances = ctx.exchange.assets.sub_account_balances(uid=cmd.uid)
    wallets: dict[str, dict[str, tuple[Decimal, Decimal]]] = {}
    accounts = (
        ("MAIN", balances.main_accounts),
        ("TRADE", balances.trade_accounts),
        ("TRADE_HF", balances.trade_hf_accounts),
        ("MARGIN", balances.margin_accounts),
    )
    for wallet, rows in accounts:
        wallets[wallet] = {b.currency: (b.balance, b.available) for b in rows if b.balance != 0 or b.available != 0}
    snapshot = BalanceSnapshot(at_ms=ctx.now_ms(), sweep_round=ctx.record.sweep_round, wallets=wallets)
    ctx.commit(
        ctx.record.model_copy(update={"balances": snapshot}),
        journal=[
            (
                JournalAction.BALANCES_READ,
                {"wallets": {w: {c: str(v[0]) for c, v in cs.items()} for w, cs in wallets.items()}},
            )
        ],
    )


# --- sending ------------------------------------------------------------------------------------------------


def _reserve(ctx: StepContext, details: TransferIntent, now: int) -> tuple[TransferIntent, list[Rider]] | str:
    """The line's reservations on the Special Account's cap of each day the exchange may execute this send on
    (``reservation_days``: today's, and the next day's too when the request may still be on the wire at midnight —
    it may be until the lock expires — or the previous day's while the exchange's clock may still show it; once
    per day: a send after midnight counts on its own day), as riders of the intent's commit
    (``worker.store.riders``: reserved in the same script, or nothing recorded; ``_cap_refusal`` says why then).
    Returns the details with the days recorded and the riders (none when the line holds them already), or why the
    cap refuses it (none set for the currency). No round trip."""
    s = ctx.services
    days = reservation_days(details.days, now, reach_ms=ctx.lock.ttl_ms)
    if not days:
        return details.model_copy(update={"last_send_days": []}), []
    cap = s.daily_caps.get(details.currency)
    if cap is None:
        return daily_cap_reason(currency=details.currency, cap=None, used=Decimal(0))
    line = ledger_line(ctx.ref, details.key)
    riders = [
        s.ledger.reservation(day=day, line=line, currency=details.currency, amount=details.amount, cap=cap)
        for day in days
    ]
    return details.model_copy(update={"days": [*details.days, *days], "last_send_days": days}), riders


def _cap_refusal(ctx: StepContext, details: TransferIntent, day: str) -> str:
    """Why ``day``'s cap refused the line's reservation (the rider of ``_reserve`` that refused names the day)."""
    cap = ctx.services.daily_caps[details.currency]
    used = ctx.services.ledger.used(day=day, currency=details.currency)
    return daily_cap_reason(currency=details.currency, cap=cap, used=used)


def _release(ctx: StepContext, key: str, days: Iterable[str]) -> None:
    """Give back a line's reservations: nothing of it moved."""
    for day in days:
        ctx.services.ledger.release(day=day, line=ledger_line(ctx.ref, key))


def _send(ctx: StepContext, details: TransferIntent, client_oid: str, *, resend: bool) -> None:
    """Send the transfer the pending intent describes and record what the answer proves."""
    pending = ctx.record.pending
    assert pending is not None
    try:
        order = ctx.exchange.transfers.transfer(
            currency=details.currency,
            amount=details.amount,
            direction=Direction(details.direction),
            account_type=AccountType(details.broker_wallet),
            special_uid=details.uid,
            special_account_type=AccountType(details.sub_wallet),
            client_oid=client_oid,
        )
    except DuplicateClientOidError as exc:
        # a transfer under our clientOid exists, but it may have FAILED: the ledger decides, once it has caught up
        marked = details.model_copy(update={"duplicate": True})
        waiting = pending.model_copy(update={"details": marked, "started_at_ms": ctx.now_ms()})
        ctx.commit(
            ctx.record.model_copy(update={"pending": waiting}),
            journal=[(JournalAction.DUPLICATE, {"kind": "transfer", "token": client_oid, "error": exc.message[:200]})],
        )
        return
    except PermanentError as exc:
        if resend or details.evidence_first or (details.earlier_send_ms and not details.operator_unsent):
            # not evidence: a refusal may come before the clientOid is looked at (the balance moved, say) — and a
            # send that may repeat a lost one (after the ledger said "not committed") may be refused because that
            # one took the money: the ledger decides. (An operator's word that nothing moved is the operator's call.)
            refused = details.model_copy(update={"refused": exc.message[:200]})
            ctx.commit(
                ctx.record.model_copy(update={"pending": pending.model_copy(update={"details": refused})}),
                journal=[(JournalAction.REFUSED, {"kind": "transfer", "token": client_oid, "error": str(exc)})],
            )
            return
        _refused(ctx, details, client_oid, str(exc))
        return
    _accepted(ctx, details, client_oid, order.order_id)


def _accepted(ctx: StepContext, details: TransferIntent, client_oid: str | None, order_id: str) -> None:
    """The exchange gave an orderId: record it (in doubt for the caps until confirmed) and read its status next."""
    now = ctx.now_ms()
    entry = _entry(details, client_oid, now, TransferStatus.ACCEPTED, order_id=order_id)
    record = ctx.record.model_copy(update={"transfers": {**ctx.record.transfers, entry.key: entry}})
    prefetch = ctx.services.prefetch
    # the status read ahead has its own scope: the same lane, but not the transfer's send deadline or pre-taken
    # weight, and no rate-limit reservation; the limiter is asked in the commit below (a soft rider)
    scope = CallScope(urgent=ctx.scope.urgent)
    admit = ctx.services.admit(_STATUS_READ, scope) if prefetch is not None else None
    ctx.settle(
        record,
        JournalAction.TRANSFER_ACCEPTED,
        {
            "key": entry.key,
            "purpose": entry.purpose.value,
            "client_oid": client_oid,
            "currency": entry.currency,
            "amount": str(entry.amount),
            "order_id": order_id,
        },
        riders=[replace(admit, soft=True)] if admit is not None else [],
    )
    if prefetch is None:
        return
    if admit is not None:
        if ctx.answers[-1] > 0:
            return  # told to wait: no read ahead, the confirm step reads the status itself
        scope = replace(scope, preadmission=Preadmission(_STATUS_READ))
    exchange = ctx.services.exchange.scoped(scope)
    prefetch.start(order_id, lambda: exchange.transfers.get(order_id=order_id))


def _prefetched(ctx: StepContext, order_id: str) -> TransferDetail | None:
    """The final status read for ``order_id`` while the run went on (``worker.provisioning.prefetch``), if any."""
    prefetch = ctx.services.prefetch
    return None if prefetch is None else prefetch.take(order_id, wait_s=ctx.services.read_wait_s)


def _refused(ctx: StepContext, details: TransferIntent, client_oid: str, reason: str) -> None:
    """The exchange refused the transfer and nothing of ours moved under its clientOid: block the step, then give
    back the line's day reservations — in that order: a crash between the two leaves a reservation held for a line
    that moved nothing (its day counts too much), never an intent still standing without its reservation (a re-send
    of it, under ``dedupe``/``reject`` the way its outcome is learnt, would pay uncounted)."""
    if details.purpose is not TransferPurpose.FUND:
        _forget_balances(ctx)  # the amount came from a snapshot the refusal says is stale: read it again
    fail(ctx, _step(details), f"the exchange refused transfer {client_oid}: {reason}")
    if details.purpose is TransferPurpose.FUND:
        _release(ctx, details.key, details.days or [details.day])


def _failed(ctx: StepContext, entry: TransferRecord, reason: str, *, created_at_ms: int | None = None) -> None:
    """Get Transfer History says FAILURE: nothing moved, and the clientOid is spent (an exchange that refuses
    repeats would answer "duplicated" for it). Funding: one commit forgets the transfer and blocks the line for an
    operator's retry, which sends it under the next clientOid. Sweep: the next round reads the balances again.

    A funding send that may repeat an earlier, lost one (``recheck_from_ms``) proves nothing of that one unless the
    failed order predates this send (the exchange answered the repeat with the first order) or an operator said the
    earlier sends moved nothing: otherwise the earlier send may have paid, so the line goes to an operator (a manual
    block: counted in doubt by both caps, its reservations kept), with the moment of the earlier send kept
    (``earlier_sends``): a later send of it is searched for a second payment, never silent."""
    transfers = {k: v for k, v in ctx.record.transfers.items() if k != entry.key}
    detail = {"key": entry.key, "order_id": entry.order_id, "client_oid": entry.client_oid, "reason": reason}
    if entry.purpose is TransferPurpose.SWEEP:
        record = ctx.record.model_copy(
            update={"transfers": transfers, "sweep_round": ctx.record.sweep_round + 1, "balances": None}
        )
        ctx.commit(record, journal=[(JournalAction.TRANSFER_FAILED, detail)])
        return
    deduplicated = (
        created_at_ms is not None and entry.this_send_ms and created_at_ms < entry.this_send_ms - LEDGER_SKEW_MS
    )
    if entry.recheck_from_ms and not deduplicated and not entry.operator_unsent:
        # the failed order is not the earlier send (the exchange made a new order for the repeat: the settings are
        # contradicted), and that send, whose answer was lost, may have paid: an operator decides from the ledger,
        # the line counted in doubt by both caps meanwhile (a manual block keeps its intent and reservations)
        record = ctx.record
        earlier = min(entry.recheck_from_ms, record.earlier_sends.get(entry.key, entry.recheck_from_ms))
        ctx.record = record.model_copy(
            update={
                "transfers": transfers,
                "pending": _intent_of(ctx, entry, with_order=False),
                "earlier_sends": {**record.earlier_sends, entry.key: earlier},
            }
        )
        fail(
            ctx,
            steps.fund(entry.key),
            f"the exchange reports transfer {entry.order_id} FAILED ({reason}), but it was a re-send of line "
            f"{entry.key} ({entry.amount} {entry.currency}) under clientOid {entry.client_oid}, whose earlier send's "
            "answer was lost, and the exchange made a new order for it instead of answering with the first: that "
            "earlier send may have paid. Check the Special Account's ledger for it, then decide with `provisioner "
            "customer settle-transfer` (--committed: it paid; --not-committed: nothing moved, the line is sent again "
            "and searched for a second payment)",
            manual=True,
        )
        return
    _release(ctx, entry.key, entry.reserved_days)
    recovered = ctx.record.recovered_at_ms
    if recovered is not None and entry.at_ms <= recovered:
        # an attempt of a restored snapshot: the line may have gone on since under a later clientOid, paid; it is
        # looked for under every clientOid it may have used, as one whose record was lost
        ctx.commit(
            ctx.record.model_copy(update={"transfers": transfers}), journal=[(JournalAction.TRANSFER_FAILED, detail)]
        )
        return
    ctx.record = ctx.record.model_copy(update={"transfers": transfers})  # committed with the block, at once
    fail(ctx, steps.fund(entry.key), f"the exchange reports transfer {entry.order_id} FAILED: {reason}")


def _burn(ctx: StepContext, details: TransferIntent, client_oid: str, why: str) -> None:
    """The transfer the exchange holds under ``client_oid`` moved nothing: the line goes on under its next
    clientOid (its reservations stay: it is sent again at once)."""
    step = steps.fund(details.key)
    record = ctx.record
    counts = {**record.retry_counts, step: max(record.retry_counts.get(step, 0), details.attempt) + 1}
    unsent = tuple(oid for oid in record.unsent_by_operator if oid != client_oid)
    # should the operator have been wrong after all, the next clientOid's payment is searched for a second one
    earlier = min(details.first_sent_ms, record.earlier_sends.get(details.key, details.first_sent_ms))
    ctx.settle(
        record.model_copy(
            update={
                "retry_counts": counts,
                "unsent_by_operator": unsent,
                "earlier_sends": {**record.earlier_sends, details.key: earlier},
            }
        ),
        JournalAction.CLIENTOID_SPENT,
        {"key": details.key, "client_oid": client_oid, "why": why},
    )


def _stuck(ctx: StepContext, entry: TransferRecord, why: str) -> None:
    """An accepted transfer that never became final: funding → an operator's verdict (its amount stays in doubt);
    sweep → unconfirmed (the next round reads the balances again)."""
    transfers = {k: v for k, v in ctx.record.transfers.items() if k != entry.key}
    if entry.purpose is TransferPurpose.SWEEP:
        unconfirmed = entry.model_copy(update={"status": TransferStatus.UNCONFIRMED, "note": why})
        record = ctx.record.model_copy(
            update={
                "transfers": {**transfers, entry.key: unconfirmed},
                "sweep_round": ctx.record.sweep_round + 1,
                "balances": None,
            }
        )
        ctx.commit(record, journal=[(JournalAction.TRANSFER_UNCONFIRMED, {"key": entry.key, "why": why})])
        return
    ctx.record = ctx.record.model_copy(update={"transfers": transfers, "pending": _intent_of(ctx, entry)})
    fail(
        ctx,
        steps.fund(entry.key),
        f"transfer {entry.client_oid} (order {entry.order_id}) of {entry.amount} {entry.currency} is not final: "
        f"{why}; once KuCoin shows it final, decide with `provisioner customer settle-transfer` (SUCCESS: "
        "--committed; FAILURE: --not-committed or --refused; the command checks the order's status itself)",
        manual=True,
    )


def _intent_of(ctx: StepContext, entry: TransferRecord, *, with_order: bool = True) -> Intent:
    """The transfer intent an accepted funding transfer stands for, kept in an operator's block (``manual``): its
    days, attempt and sends, so that the operator's verdict settles the line as the worker would have.
    ``with_order=False`` leaves its order out (an order that is not the one the verdict is about)."""
    sub = ctx.record.sub_account
    assert sub is not None
    details = TransferIntent(
        key=entry.key,
        purpose=entry.purpose,
        uid=sub.uid,
        currency=entry.currency,
        amount=entry.amount,
        direction="OUT",
        sub_wallet=entry.sub_wallet,
        broker_wallet=ctx.services.policy.broker_wallet,
        day=entry.day or utc_day(entry.at_ms),
        days=list(entry.reserved_days),
        attempt=entry.attempt,
        first_sent_ms=entry.sent_ms or entry.at_ms,
        earlier_send_ms=entry.recheck_from_ms,  # a verdict of committed still searches for a second payment
        sent_ms=entry.this_send_ms,  # unless the order predates this send (a deduplicated repeat)
        order_id=entry.order_id if with_order else None,
    )
    return Intent(kind=IntentKind.TRANSFER, token=entry.client_oid or "", started_at_ms=entry.at_ms, details=details)


def _check_later(ctx: StepContext, entry: TransferRecord, now: int, why: str) -> None:
    waited = max(0, now - entry.at_ms)
    poll = ctx.services.policy.transfer_poll_ms
    delay = min(MAX_CONFIRM_POLL_MS, max(poll, waited // 4))
    later = entry.model_copy(update={"check_at_ms": now + delay})
    ctx.commit(
        ctx.record.model_copy(update={"transfers": {**ctx.record.transfers, entry.key: later}}),
        journal=[(JournalAction.TRANSFER_PENDING, {"key": entry.key, "order_id": entry.order_id, "why": why})],
    )


def _commit(ctx: StepContext, entry: TransferRecord, *, evidence: Evidence, note: str | None) -> None:
    """Record the transfer committed (clearing its intent if it is the pending one), tell the upstream (funding),
    start the next sweep round (sweep)."""
    now = ctx.now_ms()
    policy = ctx.services.policy
    recheck_at = now + (policy.transfer_resolve_delay_ms or policy.resolve_delay_ms) if entry.recheck_from_ms else 0
    committed = entry.model_copy(
        update={
            "status": TransferStatus.COMMITTED,
            "evidence": evidence,
            "note": note,
            "at_ms": now,
            "recheck_at_ms": recheck_at,
        }
    )
    record = ctx.record
    update: dict[str, object] = {
        "transfers": {**record.transfers, committed.key: committed},
        "earlier_sends": {k: v for k, v in record.earlier_sends.items() if k != committed.key},
        "unsent_by_operator": tuple(oid for oid in record.unsent_by_operator if oid != committed.client_oid),
    }
    if committed.purpose is TransferPurpose.SWEEP:
        update |= {"sweep_round": record.sweep_round + 1, "balances": None}
    else:  # money moved into the sub-account: an offboarding reads the balances again before it closes
        update["balances"] = None
    pending = record.pending
    if pending is not None and isinstance(pending.details, TransferIntent) and pending.details.key == committed.key:
        update["pending"] = None
    record = record.model_copy(update=update)
    direction = "OUT" if committed.purpose is TransferPurpose.FUND else "IN"
    ctx.services.on_transfer(committed.currency, direction, committed.amount)
    outbound = []
    if committed.purpose is TransferPurpose.FUND:
        outbound.append(
            outcome(
                record,
                "funding.completed",
                committed.key,
                now,
                key=committed.key,
                currency=committed.currency,
                amount=str(committed.amount),
                order_id=committed.order_id,
                client_oid=committed.client_oid,
            )
        )
    ctx.commit(
        record,
        journal=[
            (
                JournalAction.TRANSFER_COMMITTED,
                {
                    "key": committed.key,
                    "purpose": committed.purpose.value,
                    "client_oid": committed.client_oid,
                    "currency": committed.currency,
                    "amount": str(committed.amount),
                    "direction": direction,
                    "order_id": committed.order_id,
                    "evidence": evidence.value,
                    "note": note,
                },
            )
        ],
        outbound=outbound,
        stats={f"transfers_{committed.purpose.value}": 1},
    )


def _found(
    ctx: StepContext, details: TransferIntent, intent: Intent, judgement: Judgement, searched: Collection[str]
) -> None:
    """The ledger shows our transfer under one of the clientOids ``searched``: accepted with its orderId (its status
    is read next), or committed. It is recorded under the clientOid the ledger names, or the only one searched, else
    none (after a loss the attempt it went out under may be unknown). A line found paid that holds no reservation
    (our record of it was lost) counts on today's cap, whatever it says: the money moved."""
    client_oid = judgement.client_oid or (next(iter(searched)) if len(set(searched)) == 1 else None)
    details = _count_today(ctx, details)
    if judgement.order_id is not None:
        if ctx.record.pending is None:
            ctx.record = ctx.record.model_copy(update={"pending": intent})
        _accepted(ctx, details, client_oid, judgement.order_id)
        return
    _commit(
        ctx,
        _entry(details, client_oid, ctx.now_ms(), TransferStatus.COMMITTED, order_id=None),
        evidence=Evidence.LEDGER,
        note=judgement.reason,
    )


def _count_order_today(ctx: StepContext, details: TransferIntent, order_id: str | None) -> None:
    """A transfer held for an operator because it may be another line's moved money today, whoever's line it is:
    it counts on today's cap under its own order, not under the line — a verdict that the line was refused
    releases the line's reservations, never this count. (The line, or the line it turns out to be, may count it
    again when its own transfer is recorded: the day then counts too much, never too little.)"""
    if details.purpose is TransferPurpose.FUND:
        _moved_today(ctx, details, f"order:{order_id}" if order_id is not None else f"held:{details.key}")


def _count_today(ctx: StepContext, details: TransferIntent) -> TransferIntent:
    """A transfer of a funding line that holds no reservation (our record of it was lost) moved money: it counts
    on today's cap, whatever it says."""
    if details.purpose is not TransferPurpose.FUND or details.days:
        return details
    return details.model_copy(update={"days": [_moved_today(ctx, details, details.key)]})


def _moved_today(ctx: StepContext, details: TransferIntent, counted_as: str) -> str:
    """Count ``details``' amount on today's cap as money that moved (whatever the cap says), under ``counted_as``
    (idempotent per name); returns the day."""
    day = utc_day(ctx.now_ms())
    ctx.services.ledger.reserve(
        day=day, line=ledger_line(ctx.ref, counted_as), currency=details.currency, amount=details.amount, cap=None
    )
    return day


def _undecided(ctx: StepContext, details: TransferIntent, client_oid: str, judgement: Judgement) -> None:
    """The exchange's records cannot tell. Funding: an operator decides (nothing is sent on a guess). Sweep:
    recorded unconfirmed; the next round reads the balances again (moving back what is there is harmless), its
    sweep keeping the first moment of this one (``blocks.not_done``) — past the bound, the sweep is blocked."""
    if details.purpose is TransferPurpose.SWEEP:
        now = ctx.now_ms()
        entry = _entry(details, client_oid, now, TransferStatus.UNCONFIRMED, order_id=None)
        record = ctx.record.model_copy(
            update={
                "transfers": {**ctx.record.transfers, entry.key: entry.model_copy(update={"note": judgement.reason})},
                "sweep_round": ctx.record.sweep_round + 1,
                "balances": None,
            }
        )
        why = {"key": entry.key, "client_oid": client_oid, "why": judgement.reason}
        # the next round sweeps under a new clientOid: it keeps this one's first moment, unless every round failed
        # for the bound (the sweep is blocked then)
        again = ctx.services.policy.naming.sweep_client_oid(
            record.ref, record.sweep_round, record.retry_counts.get(steps.SWEEP, 0)
        )
        not_done(ctx, record, JournalAction.TRANSFER_UNCONFIRMED, why, again_as=again)
        return
    asked = details.asked_about(client_oid)
    if len(asked) > 1:
        reason = (
            f"line {details.key} ({details.amount} {details.currency}) may have been sent under any of these "
            f"clientOids, our count of its attempts having been lost with our state: {', '.join(asked)}; outcome "
            f"unknown ({judgement.reason}); check each with KuCoin, then decide with `provisioner customer "
            "settle-transfer` (--not-committed: none of them moved money; --committed --client-oid: the one that "
            "did)"
        )
    else:
        reason = (
            f"transfer {client_oid} of {details.amount} {details.currency}: outcome unknown ({judgement.reason}); "
            "check with KuCoin, then decide with `provisioner customer settle-transfer`"
        )
    fail(ctx, _step(details), reason, manual=True)


# --- the ledger ---------------------------------------------------------------------------------------------


def _judge(ctx: StepContext, details: TransferIntent, client_oids: Collection[str]) -> Judgement:
    """What the Special Account's ledger says of our transfer of ``details`` under any of ``client_oids``, from
    its first possible send on (``details.first_sent_ms``). Its silence proves nothing while the exchange stands
    contradicted (``StateGuard.distrust``)."""
    if ctx.now_ms() - (details.first_sent_ms - LEDGER_SKEW_MS) > LEDGER_MAX_WINDOW_MS:
        return Judgement(Verdict.UNDECIDED, "the first possible send is too long ago to search the ledger")
    rows, unexplained, siblings = _ledger_rows(ctx, details)
    judgement = judge_by_ledger(
        client_oids=client_oids,
        uid=details.uid,
        rows=rows,
        known_order_ids={t.order_id for t in ctx.record.transfers.values() if t.order_id is not None},
        unexplained_commits=unexplained,
        siblings_in_doubt=siblings,
    )
    distrust = ctx.services.store.guard.distrust_reason()
    if judgement.verdict is Verdict.NOT_COMMITTED and distrust is not None:
        return Judgement(Verdict.UNDECIDED, f"{judgement.reason}; but the ledger's silence is not trusted: {distrust}")
    return judgement


def _ledger_rows(ctx: StepContext, details: TransferIntent) -> tuple[list[LedgerRow], int, int]:
    """The ledger entries of the transfer's currency, direction and amount from its first possible send on, with
    the counterparty of each unknown transfer; and how many commits of ours they may explain, and how many other
    lines of the amount are in doubt (see ``judge_by_ledger``)."""
    now = ctx.now_ms()
    start = details.first_sent_ms - LEDGER_SKEW_MS
    ctx.heartbeat()
    entries = ctx.ledger_reads.ledger_entries(
        currency=details.currency,
        direction="out" if details.direction == "OUT" else "in",
        start_ms=start,
        end_ms=now,
    )
    record = ctx.record
    known = {t.order_id for t in record.transfers.values() if t.order_id is not None}
    ours = [e for e in entries if abs(e.amount) == details.amount and not _other_business(e)]
    to_attribute = [
        order_id
        for order_id, oid in (_ids(e) for e in ours)
        if oid is None and order_id is not None and order_id not in known
    ]
    counterparties = _counterparties(ctx, to_attribute, details.direction)
    rows: list[LedgerRow] = []
    for entry in ours:
        order_id, oid = _ids(entry)
        counterparty = counterparties.get(order_id) if order_id is not None else None
        if counterparty == "":
            continue  # a transfer that failed: it moved nothing
        rows.append(LedgerRow(entry.id, abs(entry.amount), entry.created_at, order_id, oid, counterparty))
    same = [
        t
        for t in record.transfers.values()
        if t.key != details.key
        and t.status is TransferStatus.COMMITTED
        and t.order_id is None
        and t.purpose is details.purpose
        and t.currency == details.currency
        and t.amount == details.amount
    ]
    # commits we hold no orderId for explain one entry each, if their entry can lie in the window; one of unknown
    # time could explain any entry, so it counts like a line in doubt
    unexplained = sum(1 for t in same if t.sent_ms >= start)
    unknown_time = sum(1 for t in same if t.sent_ms == 0)
    siblings = unknown_time + sum(
        1
        for key, doubt in record.in_doubt().items()
        if key != details.key and doubt.currency == details.currency and doubt.amount == details.amount
    )
    siblings += details.twins
    return rows, unexplained, siblings if details.purpose is TransferPurpose.FUND else 0


def _attempts(ctx: StepContext, key: str, current: str) -> set[str]:
    """The clientOids a line may have been sent under before our record of it was lost: every attempt's."""
    naming = ctx.services.policy.naming
    return {current, *(naming.funding_client_oid(ctx.ref, key, a) for a in range(MAX_ATTEMPTS))}


def _candidates(ctx: StepContext, first: str, searched: Collection[str]) -> list[str]:
    """What an operator is asked about when the ledger cannot tell: each clientOid searched that no operator
    cleared yet, ``first`` (the intent's own) first."""
    cleared = set(ctx.record.unsent_by_operator)
    rest = sorted(oid for oid in searched if oid != first and oid not in cleared)
    return [first, *rest]


def _ids(entry: LedgerEntry) -> tuple[str | None, str | None]:
    """The orderId and clientOid a ledger entry's context names, if any."""
    fields = entry.context_fields()
    return fields.get("orderId") or None, fields.get("clientOid") or None


def _counterparties(ctx: StepContext, order_ids: Sequence[str], direction: str) -> dict[str, str | None]:
    """The sub-account each order moved money to (OUT) or from (IN); ``""`` for a failed transfer; ``None`` for
    one the exchange does not know (not a transfer). Final transfers are read once, ever (``TransferFacts``): what
    a run read is kept even when a later read fails, so a long judgement progresses run by run. A read that fails
    for now raises ``RetryableError``: the run is retried, never turned into an operator's case. More than
    ``MAX_ORDER_LOOKUPS`` reads in one run raise ``RateLimitedError`` (our own budget, spent): the run ends and the
    customer is due again in a second, to go on from what is kept — nothing is decided on a partial read."""
    facts = ctx.services.transfer_facts
    known = facts.get_many(order_ids)
    found: dict[str, str | None] = {}
    reads = 0
    for order_id in dict.fromkeys(order_ids):
        fact = known.get(order_id)
        if fact is None:
            reads += 1
            if reads > MAX_ORDER_LOOKUPS:
                raise RateLimitedError(
                    f"read {MAX_ORDER_LOOKUPS} transfers behind ledger entries in this run; going on in the next",
                    endpoint="get_transfer",
                    retry_after_ms=1_000,
                )
            read = _read_transfer(ctx, order_id, direction)
            if read is None or isinstance(read, str):
                found[order_id] = read
                continue
            facts.put(order_id, read)
            fact = read
        found[order_id] = "" if fact.failed else (fact.to_uid if direction == "OUT" else fact.from_uid)
    return found


def _read_transfer(ctx: StepContext, order_id: str, direction: str) -> TransferFact | str | None:
    """Get Transfer History for one order: its fact when final, the counterparty's uid while it is PROCESSING
    (counted as moving money until it fails), ``None`` when the exchange knows no such transfer."""
    ctx.heartbeat()
    try:
        detail = ctx.exchange.transfers.get(order_id=order_id)
    except PermanentError:
        return None
    if detail.status == "FAILURE":
        return TransferFact(failed=True)
    if detail.status == "SUCCESS":
        return TransferFact(failed=False, from_uid=str(detail.from_uid), to_uid=str(detail.to_uid))
    return str(detail.to_uid if direction == "OUT" else detail.from_uid)


def _other_business(entry: LedgerEntry) -> bool:
    kind = entry.biz_type.lower()
    return "transfer" not in kind and any(word in kind for word in _OTHER_BUSINESS)


# --- helpers ------------------------------------------------------------------------------------------------


def _entry(
    details: TransferIntent, client_oid: str | None, now: int, status: TransferStatus, *, order_id: str | None
) -> TransferRecord:
    fund = details.purpose is TransferPurpose.FUND
    return TransferRecord(
        key=details.key,
        purpose=details.purpose,
        client_oid=client_oid,
        currency=details.currency,
        amount=details.amount,
        sub_wallet=details.sub_wallet,
        status=status,
        order_id=order_id,
        at_ms=now,
        attempt=details.attempt,
        check_at_ms=now,
        day=details.day if fund else None,
        days=tuple(details.days) if fund else (),
        sent_ms=details.first_sent_ms,
        recheck_from_ms=_earlier_send(details) if fund else 0,
        this_send_ms=details.sent_ms,
        operator_unsent=details.operator_unsent,
    )


def _earlier_send(details: TransferIntent) -> int:
    """From when an earlier send of the line may have gone through besides this one (0: none can have)."""
    if details.earlier_send_ms:
        return details.earlier_send_ms
    return details.first_sent_ms if details.sends > 1 or details.evidence_first else 0


def _forget_balances(ctx: StepContext) -> None:
    """Drop the balance snapshot (in the next commit): the next sweep reads the balances again."""
    ctx.record = ctx.record.model_copy(update={"balances": None})


def _step(details: TransferIntent) -> steps.StepId:
    return steps.fund(details.key) if details.purpose is TransferPurpose.FUND else steps.SWEEP


def ledger_line(ref: str, key: str) -> str:
    """The daily ledger's reservation key of a funding line."""
    return f"{ref}:{key}"
