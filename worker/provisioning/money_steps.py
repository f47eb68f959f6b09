"""Money steps: fund a sub-account, sweep it back, and settle a transfer whose response was lost.

A lost transfer is settled by looking at the money, not at the clientOid: the intent records the sub-account's
balance before the transfer, and ``resolve_transfer`` reads it again (``judge_transfer``). That is right whatever
KuCoin does with a repeated clientOid — deduplicate, reject or execute again — none of which is documented.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from handlers.commands import ReadBalances, RefuseFunding, ResolveTransfer, Transfer
from handlers.planner import TransferVerdict, judge_transfer
from handlers.records import BalanceSnapshot, IntentKind, TransferPurpose, TransferRecord, TransferStatus
from worker.exchange import PermanentError
from worker.exchange.models import AccountType, Direction, SubAccountBalances
from worker.provisioning.context import StepContext
from worker.provisioning.key_steps import fail
from worker.provisioning.outbound import outcome

__all__ = ["read_balances", "refuse_funding", "resolve_transfer", "transfer"]


def transfer(cmd: Transfer, ctx: StepContext) -> None:
    """Reserve the daily cap (funding only), learn the balance before, record the intent, transfer."""
    s = ctx.services
    day = datetime.fromtimestamp(ctx.now_ms() / 1000, tz=UTC).strftime("%Y%m%d")
    line = f"{ctx.ref}:{cmd.key}"
    if cmd.purpose == TransferPurpose.FUND:
        cap = s.daily_caps.get(cmd.currency)
        if cap is None or not s.ledger.reserve(day=day, line=line, currency=cmd.currency, amount=cmd.amount, cap=cap):
            used = s.ledger.used(day=day, currency=cmd.currency)
            reason = (
                f"no daily funding cap is configured for {cmd.currency}"
                if cap is None
                else f"the Special Account's daily cap of {cap} {cmd.currency} would be exceeded (used {used})"
            )
            refuse_funding(RefuseFunding(cmd.key, cmd.currency, cmd.amount, reason), ctx)
            return
    before = cmd.expected_before
    if before is None:
        ctx.heartbeat()
        before = _total(s.exchange.assets.sub_account_balances(uid=cmd.uid), cmd.currency, cmd.sub_wallet)
    ctx.write_intent(
        IntentKind.TRANSFER,
        cmd.client_oid,
        {
            "key": cmd.key,
            "purpose": cmd.purpose,
            "uid": cmd.uid,
            "currency": cmd.currency,
            "amount": str(cmd.amount),
            "direction": cmd.direction,
            "sub_wallet": cmd.sub_wallet,
            "broker_wallet": cmd.broker_wallet,
            "before": str(before),
            # only our records and our own transfers move the balance: before the first key, or while sweeping
            "quiescent": cmd.expected_before is not None,
            "day": day,
        },
    )
    try:
        order = s.exchange.transfers.transfer(
            currency=cmd.currency,
            amount=cmd.amount,
            direction=Direction(cmd.direction),
            account_type=AccountType(cmd.broker_wallet),
            special_uid=cmd.uid,
            special_account_type=AccountType(cmd.sub_wallet),
            client_oid=cmd.client_oid,
        )
    except PermanentError as exc:
        if cmd.purpose == TransferPurpose.FUND:
            s.ledger.release(day=day, line=line)
        else:
            _forget_balances(ctx)  # the amount came from a snapshot the refusal says is stale: read it again
        fail(ctx, _step(cmd.purpose, cmd.key), f"the exchange refused transfer {cmd.client_oid}: {exc}")
        return
    _committed(ctx, order_id=order.order_id, note=None)


def resolve_transfer(cmd: ResolveTransfer, ctx: StepContext) -> None:
    """Read the balance and judge: committed → record it; not committed → clear the intent (the same clientOid
    is sent again); anything else → block for a human, never send again on a guess."""
    pending = ctx.record.pending
    assert pending is not None
    d = pending.details
    ctx.heartbeat()
    observed = _total(ctx.services.exchange.assets.sub_account_balances(uid=cmd.uid), d["currency"], d["sub_wallet"])
    before, amount = Decimal(d["before"]), Decimal(d["amount"])
    verdict = judge_transfer(
        before=before,
        amount=amount,
        direction=d["direction"],
        observed=observed,
        quiescent=bool(d.get("quiescent", True)),
    )
    if verdict is TransferVerdict.COMMITTED:
        _committed(ctx, order_id=None, note="response lost; committed, verified by the sub-account balance")
    elif verdict is TransferVerdict.NOT_COMMITTED:
        if d["purpose"] == TransferPurpose.SWEEP:
            _forget_balances(ctx)  # send again what is there now, not what was there then
        ctx.settle(ctx.record, "not_committed", {"kind": "transfer", "token": pending.token, "observed": str(observed)})
    else:
        if d["purpose"] == TransferPurpose.SWEEP:
            _forget_balances(ctx)
        fail(
            ctx,
            _step(d["purpose"], d["key"]),
            f"transfer {pending.token} of {amount} {d['currency']}: outcome unknown (balance {observed}, expected "
            f"{before} if not applied); verify with KuCoin, then decide with `provisioner customer settle-transfer`",
            manual=True,
        )


def refuse_funding(cmd: RefuseFunding, ctx: StepContext) -> None:
    now = ctx.now_ms()
    record = ctx.record
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


def _committed(ctx: StepContext, *, order_id: str | None, note: str | None) -> None:
    pending = ctx.record.pending
    assert pending is not None
    d = pending.details
    now = ctx.now_ms()
    purpose = TransferPurpose(d["purpose"])
    entry = TransferRecord(
        key=d["key"],
        purpose=purpose,
        client_oid=pending.token,
        currency=d["currency"],
        amount=Decimal(d["amount"]),
        sub_wallet=d["sub_wallet"],
        status=TransferStatus.COMMITTED,
        order_id=order_id,
        note=note,
        at_ms=now,
    )
    record = ctx.record
    update: dict[str, object] = {"transfers": {**record.transfers, entry.key: entry}}
    outbound = []
    if purpose is TransferPurpose.SWEEP:
        update |= {"sweep_round": record.sweep_round + 1, "balances": None}
    record = record.model_copy(update=update)
    ctx.services.on_transfer(entry.currency, d["direction"], entry.amount)
    if purpose is TransferPurpose.FUND:
        outbound.append(
            outcome(
                record,
                "funding.completed",
                entry.key,
                now,
                key=entry.key,
                currency=entry.currency,
                amount=str(entry.amount),
                order_id=order_id,
                client_oid=entry.client_oid,
            )
        )
    ctx.settle(
        record,
        "transfer.committed",
        {
            "key": entry.key,
            "purpose": purpose.value,
            "client_oid": pending.token,
            "currency": entry.currency,
            "amount": str(entry.amount),
            "direction": d["direction"],
            "order_id": order_id,
            "note": note,
        },
        outbound=outbound,
        stats={f"transfers_{purpose.value}": 1},
    )


def _forget_balances(ctx: StepContext) -> None:
    """Drop the balance snapshot (in the next commit): the next sweep reads the balances again."""
    ctx.record = ctx.record.model_copy(update={"balances": None})


def _total(balances: SubAccountBalances, currency: str, wallet: str) -> Decimal:
    row = balances.wallet(AccountType(wallet)).get(currency)
    return row.balance if row is not None else Decimal(0)


def _step(purpose: str, key: str) -> str:
    return f"fund:{key}" if purpose == TransferPurpose.FUND else "sweep"
