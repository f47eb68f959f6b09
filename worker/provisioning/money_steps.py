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
send that may repeat a lost one             the clientOid): the ledger decides
no answer (time-out, 5xx, crash)            the intent stays; after the settle delay: re-sent under the same
                                            clientOid where the exchange deduplicates or refuses repeats
                                            (``dedupe``/``reject``), else judged from the Special Account's
                                            ledger (``handlers.settlement``); undecided → an operator's verdict
                                            (a sweep is recorded unconfirmed instead: moving back what is there
                                            is harmless, the next round reads the balances again)
==========================================  ====================================================================
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from handlers import steps
from handlers.commands import ConfirmTransfer, ReadBalances, RefuseFunding, ResolveTransfer, Transfer
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
from handlers.settlement import Judgement, LedgerRow, Verdict, judge_by_ledger
from worker.exchange import DuplicateClientOidError, ExchangeError, PermanentError
from worker.exchange.models import AccountType, Direction, LedgerEntry
from worker.provisioning.blocks import fail
from worker.provisioning.context import StepContext
from worker.provisioning.outbound import outcome

__all__ = [
    "confirm_transfer",
    "read_balances",
    "refuse_funding",
    "resolve_transfer",
    "transfer",
]

LEDGER_SKEW_MS = 5 * 60_000
"""Ledger entries are looked for from this long before our first send (clocks of two systems differ)."""
LEDGER_MAX_WINDOW_MS = 7 * 86_400_000
"""Beyond this the ledger is not searched (hundreds of pages): an operator decides."""
MAX_ORDER_LOOKUPS = 50
"""Transfers looked up to attribute ledger entries, at most, per judgement."""
MAX_CONFIRM_POLL_MS = 10 * 60_000
_OTHER_BUSINESS = ("deposit", "withdraw", "exchange", "trade", "bonus", "rebate", "fee", "margin", "loan", "earn")
"""Ledger ``bizType`` words that are never a broker transfer (KuCoin's exact name for one is not documented)."""


def transfer(cmd: Transfer, ctx: StepContext) -> None:
    """Reserve the daily cap (funding only), look first where a lost earlier send may exist and only the ledger
    can tell, record the intent, transfer. See the module table for every answer."""
    s = ctx.services
    now = ctx.now_ms()
    day = _day(now)
    if cmd.purpose == TransferPurpose.FUND:
        cap = s.daily_caps.get(cmd.currency)
        line = _ledger_line(ctx.ref, cmd.key)
        if cap is None or not s.ledger.reserve(day=day, line=line, currency=cmd.currency, amount=cmd.amount, cap=cap):
            used = s.ledger.used(day=day, currency=cmd.currency)
            reason = (
                f"no daily funding cap is configured for {cmd.currency}"
                if cap is None
                else f"the Special Account's daily cap of {cap} {cmd.currency} would be exceeded (used {used})"
            )
            refuse_funding(RefuseFunding(cmd.key, cmd.currency, cmd.amount, reason), ctx)
            return
    details = TransferIntent(
        key=cmd.key,
        purpose=TransferPurpose(cmd.purpose),
        uid=cmd.uid,
        currency=cmd.currency,
        amount=cmd.amount,
        direction=cmd.direction,
        sub_wallet=cmd.sub_wallet,
        broker_wallet=cmd.broker_wallet,
        day=day,
        attempt=cmd.attempt,
        first_sent_ms=now,
        evidence_first=cmd.evidence_first,
    )
    if cmd.evidence_first and not s.resend_is_evidence:
        # our record of an earlier send may be lost, and the exchange may execute a repeat: the ledger first
        judgement = _judge(ctx, details, cmd.client_oid, since_ms=ctx.record.recovered_at_ms or now)
        if judgement.verdict is Verdict.COMMITTED:
            intent = Intent(kind=IntentKind.TRANSFER, token=cmd.client_oid, started_at_ms=now, details={})
            _found(ctx, details, intent, judgement)
            return
        if judgement.verdict is Verdict.UNDECIDED:
            ctx.record = ctx.record.model_copy(
                update={
                    "pending": Intent(
                        kind=IntentKind.TRANSFER,
                        token=cmd.client_oid,
                        started_at_ms=now,
                        details=details.as_details(),
                    )
                }
            )
            _undecided(ctx, details, cmd.client_oid, judgement)
            return
        details = details.model_copy(update={"evidence_first": False})  # the ledger shows no earlier send
    ctx.write_intent(IntentKind.TRANSFER, cmd.client_oid, details.as_details())
    _send(ctx, details, cmd.client_oid, resend=False)


def resolve_transfer(cmd: ResolveTransfer, ctx: StepContext) -> None:
    """Settle the pending transfer from the exchange's record of it; never from a balance."""
    pending = ctx.record.pending
    assert pending is not None
    details = TransferIntent.of(pending)
    if ctx.services.resend_is_evidence and details.refused is None:
        resent = details.model_copy(update={"sends": details.sends + 1})
        ctx.write_intent(IntentKind.TRANSFER, pending.token, resent.as_details())
        _send(ctx, resent, pending.token, resend=True)
        return
    judgement = _judge(ctx, details, pending.token, since_ms=details.first_sent_ms)
    if judgement.verdict is Verdict.COMMITTED:
        _found(ctx, details, pending, judgement)
    elif judgement.verdict is Verdict.UNDECIDED:
        _undecided(ctx, details, pending.token, judgement)
    elif details.refused is not None:
        # the exchange refused a re-send and the ledger shows nothing of ours: the refusal stands
        _refused(ctx, details, pending.token, details.refused)
    else:
        if details.purpose is TransferPurpose.SWEEP:
            _forget_balances(ctx)  # send again what is there now, not what was there then
        ctx.settle(
            ctx.record,
            "not_committed",
            {"kind": "transfer", "token": pending.token, "evidence": judgement.reason},
        )


def confirm_transfer(cmd: ConfirmTransfer, ctx: StepContext) -> None:
    """Get Transfer History for an accepted transfer: SUCCESS → committed, FAILURE → nothing moved, PROCESSING →
    read again later."""
    entry = ctx.record.transfers[cmd.key]
    ctx.heartbeat()
    now = ctx.now_ms()
    try:
        detail = ctx.services.exchange.transfers.get(order_id=cmd.order_id)
    except PermanentError as exc:
        # the exchange does not (yet) know the order it gave us: look again later, never guess
        _check_later(ctx, entry, now, f"the exchange does not show order {cmd.order_id} yet: {exc}")
        return
    if detail.status == "SUCCESS":
        _commit(ctx, entry, evidence=Evidence.HISTORY, note=None)
    elif detail.status == "FAILURE":
        _failed(ctx, entry, detail.reason or "no reason given")
    else:
        _check_later(ctx, entry, now, f"order {cmd.order_id} is {detail.status}")


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
    ctx.settle(
        record,
        "funding.refused",
        {"key": cmd.key, "currency": cmd.currency, "amount": str(cmd.amount), "reason": cmd.reason},
        outbound=[
            outcome(
                record,
                "funding.refused",
                cmd.key,
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
    balances = ctx.services.exchange.assets.sub_account_balances(uid=cmd.uid)
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
            ("balances_read", {"wallets": {w: {c: str(v[0]) for c, v in cs.items()} for w, cs in wallets.items()}})
        ],
    )


# --- sending ------------------------------------------------------------------------------------------------


def _send(ctx: StepContext, details: TransferIntent, client_oid: str, *, resend: bool) -> None:
    """Send the transfer the pending intent describes and record what the answer proves."""
    pending = ctx.record.pending
    assert pending is not None
    try:
        order = ctx.services.exchange.transfers.transfer(
            currency=details.currency,
            amount=details.amount,
            direction=Direction(details.direction),
            account_type=AccountType(details.broker_wallet),
            special_uid=details.uid,
            special_account_type=AccountType(details.sub_wallet),
            client_oid=client_oid,
        )
    except DuplicateClientOidError as exc:
        _commit(
            ctx,
            _entry(details, client_oid, ctx.now_ms(), TransferStatus.COMMITTED, order_id=None),
            evidence=Evidence.DUPLICATE,
            note=f"the exchange holds a transfer under this clientOid ({exc.message[:120]})",
        )
        return
    except PermanentError as exc:
        if resend or details.evidence_first:
            # not evidence: a refusal may come before the clientOid is looked at (the balance moved, say)
            refused = details.model_copy(update={"refused": exc.message[:200]})
            ctx.commit(
                ctx.record.model_copy(update={"pending": pending.model_copy(update={"details": refused.as_details()})}),
                journal=[("refused", {"kind": "transfer", "token": client_oid, "error": str(exc)})],
            )
            return
        _refused(ctx, details, client_oid, str(exc))
        return
    _accepted(ctx, details, client_oid, order.order_id)


def _accepted(ctx: StepContext, details: TransferIntent, client_oid: str, order_id: str) -> None:
    """The exchange gave an orderId: record it (money counts as moved) and read its final status next."""
    now = ctx.now_ms()
    entry = _entry(details, client_oid, now, TransferStatus.ACCEPTED, order_id=order_id)
    record = ctx.record.model_copy(update={"transfers": {**ctx.record.transfers, entry.key: entry}})
    ctx.settle(
        record,
        "transfer.accepted",
        {
            "key": entry.key,
            "purpose": entry.purpose.value,
            "client_oid": client_oid,
            "currency": entry.currency,
            "amount": str(entry.amount),
            "order_id": order_id,
        },
    )


def _refused(ctx: StepContext, details: TransferIntent, client_oid: str, reason: str) -> None:
    """The exchange refused the transfer and nothing of ours moved under its clientOid: block the step."""
    if details.purpose is TransferPurpose.FUND:
        ctx.services.ledger.release(day=details.day, line=_ledger_line(ctx.ref, details.key))
    else:
        _forget_balances(ctx)  # the amount came from a snapshot the refusal says is stale: read it again
    fail(ctx, _step(details), f"the exchange refused transfer {client_oid}: {reason}")


def _failed(ctx: StepContext, entry: TransferRecord, reason: str) -> None:
    """Get Transfer History says FAILURE: nothing moved. Funding: blocked for a retry under a new clientOid.
    Sweep: the next round reads the balances again."""
    transfers = {k: v for k, v in ctx.record.transfers.items() if k != entry.key}
    detail = {"key": entry.key, "order_id": entry.order_id, "client_oid": entry.client_oid, "reason": reason}
    if entry.purpose is TransferPurpose.SWEEP:
        record = ctx.record.model_copy(
            update={"transfers": transfers, "sweep_round": ctx.record.sweep_round + 1, "balances": None}
        )
        ctx.commit(record, journal=[("transfer.failed", detail)])
        return
    if entry.day is not None:
        ctx.services.ledger.release(day=entry.day, line=_ledger_line(ctx.ref, entry.key))
    ctx.record = ctx.record.model_copy(update={"transfers": transfers})
    ctx.commit(ctx.record, journal=[("transfer.failed", detail)])
    fail(ctx, steps.fund(entry.key), f"the exchange reports transfer {entry.order_id} FAILED: {reason}")


def _check_later(ctx: StepContext, entry: TransferRecord, now: int, why: str) -> None:
    waited = max(0, now - entry.at_ms)
    poll = ctx.services.policy.transfer_poll_ms
    delay = min(MAX_CONFIRM_POLL_MS, max(poll, waited // 4))
    later = entry.model_copy(update={"check_at_ms": now + delay})
    ctx.commit(
        ctx.record.model_copy(update={"transfers": {**ctx.record.transfers, entry.key: later}}),
        journal=[("transfer.pending", {"key": entry.key, "order_id": entry.order_id, "why": why})],
    )


def _commit(ctx: StepContext, entry: TransferRecord, *, evidence: Evidence, note: str | None) -> None:
    """Record the transfer committed (clearing its intent if it is the pending one), tell the upstream (funding),
    start the next sweep round (sweep)."""
    now = ctx.now_ms()
    committed = entry.model_copy(
        update={"status": TransferStatus.COMMITTED, "evidence": evidence, "note": note, "at_ms": now}
    )
    record = ctx.record
    update: dict[str, object] = {"transfers": {**record.transfers, committed.key: committed}}
    if committed.purpose is TransferPurpose.SWEEP:
        update |= {"sweep_round": record.sweep_round + 1, "balances": None}
    if record.pending is not None and record.pending.token == committed.client_oid:
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
                "transfer.committed",
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


def _found(ctx: StepContext, details: TransferIntent, intent: Intent, judgement: Judgement) -> None:
    """The ledger shows our transfer: accepted with its orderId (its status is read next), or committed."""
    if judgement.order_id is not None:
        if ctx.record.pending is None:
            ctx.record = ctx.record.model_copy(update={"pending": intent})
        _accepted(ctx, details, intent.token, judgement.order_id)
        return
    _commit(
        ctx,
        _entry(details, intent.token, ctx.now_ms(), TransferStatus.COMMITTED, order_id=None),
        evidence=Evidence.LEDGER,
        note=judgement.reason,
    )


def _undecided(ctx: StepContext, details: TransferIntent, client_oid: str, judgement: Judgement) -> None:
    """The exchange's records cannot tell. Funding: an operator decides (nothing is sent on a guess). Sweep:
    recorded unconfirmed; the next round reads the balances again (moving back what is there is harmless)."""
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
        ctx.settle(record, "transfer.unconfirmed", why)
        return
    fail(
        ctx,
        _step(details),
        f"transfer {client_oid} of {details.amount} {details.currency}: outcome unknown ({judgement.reason}); check "
        "with KuCoin, then decide with `provisioner customer settle-transfer`",
        manual=True,
    )


# --- the ledger ---------------------------------------------------------------------------------------------


def _judge(ctx: StepContext, details: TransferIntent, client_oid: str, *, since_ms: int) -> Judgement:
    """What the Special Account's ledger says of our transfer under ``client_oid`` sent from ``since_ms`` on."""
    s = ctx.services
    now = ctx.now_ms()
    start = min(since_ms, details.first_sent_ms) - LEDGER_SKEW_MS
    if now - start > LEDGER_MAX_WINDOW_MS:
        return Judgement(Verdict.UNDECIDED, "the first send is too long ago to search the ledger")
    ctx.heartbeat()
    entries = s.exchange.assets.ledger_entries(
        currency=details.currency,
        direction="out" if details.direction == "OUT" else "in",
        start_ms=start,
        end_ms=now,
    )
    record = ctx.record
    known = {t.order_id for t in record.transfers.values() if t.order_id is not None}
    rows: list[LedgerRow] = []
    lookups = 0
    for entry in entries:
        if abs(entry.amount) != details.amount or _other_business(entry):
            continue
        fields = entry.context_fields()
        order_id, oid = fields.get("orderId") or None, fields.get("clientOid") or None
        counterparty = None
        if oid is None and order_id is not None and order_id not in known:
            lookups += 1
            if lookups > MAX_ORDER_LOOKUPS:
                return Judgement(Verdict.UNDECIDED, f"more than {MAX_ORDER_LOOKUPS} candidate transfers to look up")
            counterparty = _counterparty(ctx, order_id, details.direction)
            if counterparty == "":
                continue  # a transfer that failed: it moved nothing
        rows.append(LedgerRow(entry.id, abs(entry.amount), entry.created_at, order_id, oid, counterparty))
    unexplained = sum(
        1
        for t in record.transfers.values()
        if t.moved_money
        and t.order_id is None
        and t.purpose is details.purpose
        and t.currency == details.currency
        and t.amount == details.amount
    )
    return judge_by_ledger(
        client_oid=client_oid, uid=details.uid, rows=rows, known_order_ids=known, unexplained_commits=unexplained
    )


def _counterparty(ctx: StepContext, order_id: str, direction: str) -> str | None:
    """The sub-account an order moved money to (OUT) or from (IN); ``""`` for a failed transfer; ``None`` when
    the exchange cannot tell (not a transfer, or not readable)."""
    ctx.heartbeat()
    try:
        detail = ctx.services.exchange.transfers.get(order_id=order_id)
    except ExchangeError:
        return None
    if detail.status == "FAILURE":
        return ""
    return str(detail.to_uid if direction == "OUT" else detail.from_uid)


def _other_business(entry: LedgerEntry) -> bool:
    kind = entry.biz_type.lower()
    return "transfer" not in kind and any(word in kind for word in _OTHER_BUSINESS)


# --- helpers ------------------------------------------------------------------------------------------------


def _entry(
    details: TransferIntent, client_oid: str, now: int, status: TransferStatus, *, order_id: str | None
) -> TransferRecord:
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
        day=details.day if details.purpose is TransferPurpose.FUND else None,
    )


def _forget_balances(ctx: StepContext) -> None:
    """Drop the balance snapshot (in the next commit): the next sweep reads the balances again."""
    ctx.record = ctx.record.model_copy(update={"balances": None})


def _step(details: TransferIntent) -> str:
    return steps.fund(details.key) if details.purpose is TransferPurpose.FUND else steps.SWEEP


def _ledger_line(ref: str, key: str) -> str:
    """The daily ledger's reservation key of a funding line."""
    return f"{ref}:{key}"


def _day(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y%m%d")
