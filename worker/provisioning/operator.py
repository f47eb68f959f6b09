"""Decisions only a human can take, recorded like any other change (fenced, journaled as the operator's) and told
to the upstream like the worker's own verdicts.

A transfer whose outcome the exchange's records could not tell is blocked for a manual decision (its line keeps
counting against the caps meanwhile). Once on-call has checked with KuCoin, ``settle_transfer`` records the
verdict:

- ``committed``: the money moved — recorded, never sent again; ``funding.completed`` is emitted.
- ``not_committed``: nothing moved — a funding line is sent again under the *same* clientOid (if the operator
  was wrong, an exchange that deduplicates or refuses repeats still cannot pay twice); a sweep reads the
  balances again and moves what is there under a new clientOid.
- ``refused``: nothing moved and the line must not be sent — ``funding.refused`` is emitted, the Special
  Account's daily reservation is released.

A block of a transfer the exchange gave an orderId to (it stayed PROCESSING too long) takes only the verdict the
order's status allows once it is final: the exchange's own record beats anyone's word, and an exchange may credit
the sub-account only when the transfer completes (a committed verdict before then closed an offboarded customer
before its money arrived).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from handlers import steps
from handlers.daily_cap import LEDGER_SKEW_MS, executed_on
from handlers.journal import JournalAction
from handlers.records import (
    CustomerRecord,
    Evidence,
    TransferIntent,
    TransferPurpose,
    TransferRecord,
    TransferStatus,
)
from handlers.refusals import refusal_identity
from worker.exchange import ExchangeClient, ExchangeError, PermanentError
from worker.exchange.models import TransferDetail
from worker.ports import StorePorts
from worker.provisioning.outbound import outcome
from worker.store.customers import JournalEntry, OutboundEvent
from worker.store.ledger import FundingLedger
from worker.store.lock import CustomerLock

__all__ = ["OperatorError", "OperatorPorts", "TransferVerdict", "settle_transfer"]


class OperatorPorts(StorePorts, Protocol):
    """What an operator's decision reads and writes: the customer's lock and store, the daily funding ledger, the
    due schedule, the clock, and the exchange (a transfer's status). ``worker.bootstrap.App`` is one."""

    @property
    def ledger(self) -> FundingLedger: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def exchange(self) -> ExchangeClient: ...


class OperatorError(Exception):
    """The decision does not apply (no such blocked transfer, customer busy)."""


class TransferVerdict(StrEnum):
    COMMITTED = "committed"
    NOT_COMMITTED = "not_committed"
    REFUSED = "refused"


def settle_transfer(
    app: OperatorPorts,
    ref: str,
    step: str,
    *,
    committed: bool | None = None,
    verdict: TransferVerdict | None = None,
    order_id: str | None = None,
    client_oid: str | None = None,
    who: str,
    note: str = "",
    force: bool = False,
) -> JournalAction:
    """Record an operator's verdict on the blocked transfer ``step`` (``fund:<line>`` or ``sweep``). Give
    ``verdict``, or ``committed`` as a shorthand for committed / not committed. A block that asks about several
    clientOids (a line of a recovered record: any attempt's) is answered for all of them: not committed means none
    moved money; committed names the one that did with ``client_oid`` (default: the first asked about). Returns the
    journal action. A block of a transfer the exchange gave an order to, or a verdict naming an order
    (``order_id``), is checked against that order (``_agrees_with_the_order``; ``force``: an order the exchange's
    history does not show is taken on the operator's word, journalled). Raises ``OperatorError`` when no transfer
    at ``step`` awaits a decision (``step`` names no step
    at all: ``handlers.steps.parse``), ``client_oid`` is not one the block asks about, or the customer is busy."""
    try:
        step_id = steps.parse(step)
    except ValueError as exc:
        raise OperatorError(f"no transfer awaiting a manual decision at step {step!r}: {exc}") from None
    if verdict is None:
        if committed is None:
            raise OperatorError("say whether the transfer committed")
        verdict = TransferVerdict.COMMITTED if committed else TransferVerdict.NOT_COMMITTED
    lock = CustomerLock(app.redis, app.keys, ref, ttl_ms=app.settings.lock_ttl_ms)
    if not lock.acquire():
        raise OperatorError("the customer is being reconciled right now; try again in a moment")
    try:
        record = app.store.load(ref)
        if record is None:
            raise OperatorError("no such customer")
        blocked = record.blocked.get(step_id)
        if blocked is None or not blocked.manual:
            raise OperatorError(f"no transfer awaiting a manual decision at step {step!r}")
        if blocked.intent is None:
            raise OperatorError(f"the block at {step} kept no transfer details")
        details = TransferIntent.of(blocked.intent)
        if verdict is TransferVerdict.REFUSED and details.purpose is TransferPurpose.SWEEP:
            raise OperatorError("a sweep cannot be refused: say committed or not_committed")
        if details.order_id is not None and order_id is not None and order_id != details.order_id:
            raise OperatorError(
                f"the block at {step} is of order {details.order_id}; --order-id {order_id} names another transfer"
            )
        order_id = order_id or details.order_id
        shown: TransferDetail | None = None
        if order_id is not None:
            owner = _line_holding(record, order_id)
            if owner is not None and owner != details.key:
                raise OperatorError(f"order {order_id} is line {owner}'s transfer already, not this line's")
            shown = _agrees_with_the_order(app, order_id, verdict, details, force=force)
        # a re-send the exchange answered with an order it made before (deduplicated) cannot be a second payment:
        # only the block's own order says what the exchange answered; one the operator names says nothing of it
        repeat = (
            shown is not None
            and order_id == details.order_id
            and bool(details.sent_ms)
            and shown.created_at < details.sent_ms - LEDGER_SKEW_MS
        )
        asked = details.asked_about(blocked.intent.token)
        if client_oid is not None and client_oid not in asked:
            raise OperatorError(f"the block at {step} does not ask about clientOid {client_oid}: {', '.join(asked)}")
        now = int(app.clock() * 1000)
        details, spare, missing = _on_execution_day(details, verdict, shown)
        update, outbound, action = _apply(
            record,
            step_id,
            details,
            client_oid=client_oid or blocked.intent.token,
            asked=asked,
            verdict=verdict,
            order_id=order_id,
            note=note,
            now=now,
            search_for_double=not repeat,
        )
        new = record.model_copy(update=update)
        assert lock.token is not None
        # due before the verdict lands: should the process die after the commit, the workers still act on it (a
        # wake-up that finds nothing to do costs one run; one never scheduled would leave the line untold for good)
        app.due.schedule(ref, now)
        app.store.commit(
            lock.token,
            record,
            new,
            journal=[
                JournalEntry(
                    now,
                    action,
                    {
                        "step": step,
                        "key": details.key,
                        "client_oid": client_oid or blocked.intent.token,
                        "asked_about": asked,
                        "order_id": order_id,
                        "verdict": verdict.value,
                        "decided_by": who,
                        "note": note or "operator decision",
                        "evidence": Evidence.OPERATOR.value if verdict is TransferVerdict.COMMITTED else None,
                        "forced": order_id is not None and shown is None,
                    },
                    actor="operator",
                )
            ],
            outbound=outbound,
            now_ms=now,
            # a day the order executed on that the line held nothing of counts it in the same script (money moved)
            riders=[]
            if missing is None
            else [
                app.ledger.reservation(
                    day=missing,
                    line=f"{ref}:{details.key}",
                    currency=details.currency,
                    amount=details.amount,
                    cap=None,
                )
            ],
        )
        if verdict is TransferVerdict.REFUSED:  # recorded as never moving money: its daily reservations go
            for day in details.days or [details.day]:
                app.ledger.release(day=day, line=f"{ref}:{details.key}")
        for day in spare:  # given back after the commit: a crash in between only over-counts
            app.ledger.release(day=day, line=f"{ref}:{details.key}")
        return action
    finally:
        lock.release()


def _on_execution_day(
    details: TransferIntent, verdict: TransferVerdict, shown: TransferDetail | None
) -> tuple[TransferIntent, list[str], str | None]:
    """A committed verdict on a block whose last send was refused (it moved nothing), with the order the exchange
    shows: a day only that refused send reserved is given back unless the order executed on it (adv24: a re-send
    refused after midnight kept a day the money never moved on); a day an earlier send reserved stays, as that
    send may have paid on it too (adv25). Returns the details with the days they keep, the days to give back, and
    the day to count the order on if the line holds none of it. Otherwise the details as they are."""
    if (
        verdict is not TransferVerdict.COMMITTED
        or details.purpose is not TransferPurpose.FUND
        or details.refused is None
        or shown is None
        or details.earlier_send_ms  # an earlier intent's send may have paid on any day this one holds: keep all
    ):
        return details, [], None
    held = details.days or [details.day]
    spare, missing = executed_on(held, shown.created_at)
    spare = [d for d in spare if d in details.last_send_days]
    days = [d for d in held if d not in spare] + ([missing] if missing else [])
    return details.model_copy(update={"days": days}), spare, missing


def _line_holding(record: CustomerRecord, order_id: str) -> str | None:
    """The funding line (or sweep) whose transfer ``order_id`` is by our record: recorded, or named by a block or
    the pending intent of a transfer that stayed PROCESSING."""
    for transfer in record.transfers.values():
        if transfer.order_id == order_id:
            return transfer.key
    intents = [b.intent for b in record.blocked.values() if b.intent is not None]
    if record.pending is not None:
        intents.append(record.pending)
    for intent in intents:
        if isinstance(intent.details, TransferIntent) and intent.details.order_id == order_id:
            return intent.details.key
    return None


def _agrees_with_the_order(
    app: OperatorPorts, order_id: str, verdict: TransferVerdict, details: TransferIntent, *, force: bool
) -> TransferDetail | None:
    """Raise ``OperatorError`` unless ``order_id`` — the block's own order, or the one the operator names — is a
    transfer of this line (its sub-account, currency and amount) and ``verdict`` is one its status allows: SUCCESS
    only committed, FAILURE never committed, anything else (still PROCESSING) none yet. An order the exchange's
    history does not show is decided only with ``force`` (KuCoin confirmed its status out of band). Returns the
    order as the exchange shows it (``None``: not shown, forced)."""
    try:
        detail = app.exchange.transfers.get(order_id=order_id)
    except PermanentError as exc:
        if force:
            return None
        raise OperatorError(
            f"the exchange does not show order {order_id} ({exc}): ask KuCoin for its final status, then decide "
            "with --force"
        ) from None
    except ExchangeError as exc:
        raise OperatorError(f"could not read order {order_id} from the exchange ({exc}); try again") from None
    counterparty = str(detail.to_uid if details.direction == "OUT" else detail.from_uid)
    if (counterparty, detail.currency, detail.amount) != (details.uid, details.currency, details.amount):
        raise OperatorError(
            f"order {order_id} moved {detail.amount} {detail.currency} with {counterparty}, not this line's "
            f"{details.amount} {details.currency} with {details.uid}"
        )
    status = str(detail.status)
    if status == "SUCCESS" and verdict is not TransferVerdict.COMMITTED:
        raise OperatorError(f"the exchange shows order {order_id} SUCCESS: the money moved; only --committed applies")
    if status == "FAILURE" and verdict is TransferVerdict.COMMITTED:
        raise OperatorError(
            f"the exchange shows order {order_id} FAILURE: nothing moved; --not-committed sends the line again, "
            "--refused refuses it"
        )
    if status not in ("SUCCESS", "FAILURE"):
        raise OperatorError(
            f"the exchange still shows order {order_id} {status}: its money may reach the sub-account only when it "
            "completes; decide once it shows SUCCESS or FAILURE"
        )
    return detail


def _apply(
    record: CustomerRecord,
    step: steps.StepId,
    details: TransferIntent,
    *,
    client_oid: str,
    asked: list[str],
    verdict: TransferVerdict,
    order_id: str | None,
    note: str,
    now: int,
    search_for_double: bool = True,
) -> tuple[dict[str, object], list[OutboundEvent], JournalAction]:
    """The record update, the events for the upstream and the journal action of a verdict. ``search_for_double``:
    a committed line that may have been sent twice is searched for a second payment (not when the exchange shows
    its order made before the last send: a deduplicated repeat)."""
    update: dict[str, object] = {"blocked": {k: v for k, v in record.blocked.items() if k != step}}
    if verdict is TransferVerdict.NOT_COMMITTED:
        if details.purpose is TransferPurpose.SWEEP:
            update["retry_counts"] = {**record.retry_counts, step: record.retry_counts.get(step, 0) + 1}
            update["balances"] = None  # sweep what is there now
        elif details.duplicate:
            # the exchange holds a transfer under this clientOid, which (the operator says) moved nothing: spent
            update["retry_counts"] = {
                **record.retry_counts,
                step: max(record.retry_counts.get(step, 0), details.attempt) + 1,
            }
        else:
            # sent again under the same clientOid: should the operator be wrong, an exchange that deduplicates or
            # refuses repeats still cannot pay twice (its ledger is searched from the first send on); one holding a
            # failed transfer under it moves the line on
            cleared = [oid for oid in asked if oid not in record.unsent_by_operator]
            update["unsent_by_operator"] = (*record.unsent_by_operator, *cleared)
            earlier = min(details.first_sent_ms, record.earlier_sends.get(details.key, details.first_sent_ms))
            update["earlier_sends"] = {**record.earlier_sends, details.key: earlier}
        return update, [], JournalAction.TRANSFER_NOT_COMMITTED
    committed = verdict is TransferVerdict.COMMITTED
    entry = TransferRecord(
        key=details.key,
        purpose=details.purpose,
        client_oid=client_oid,
        currency=details.currency,
        amount=details.amount,
        sub_wallet=details.sub_wallet,
        status=TransferStatus.COMMITTED if committed else TransferStatus.REFUSED,
        order_id=order_id,
        note=f"{verdict.value} by an operator" + (f": {note}" if note else ""),
        at_ms=now,
        attempt=details.attempt,
        evidence=Evidence.OPERATOR if committed else None,
        day=details.day if details.purpose is TransferPurpose.FUND else None,
        days=tuple(details.days) if details.purpose is TransferPurpose.FUND else (),
    )
    if committed and details.purpose is TransferPurpose.FUND and details.earlier_send_ms and search_for_double:
        # an earlier send of the line may have gone through too: searched for a second payment, as the worker's
        # own commit of such a send is (``money_steps.recheck_transfer``)
        entry = entry.model_copy(update={"recheck_from_ms": details.earlier_send_ms, "recheck_at_ms": now})
    update["transfers"] = {**record.transfers, entry.key: entry}
    if committed and details.purpose is TransferPurpose.FUND:
        # money moved into the sub-account, perhaps only now (an exchange that credits a transfer when it
        # completes): an offboarding reads the balances again before it closes
        update["balances"] = None
    if details.purpose is TransferPurpose.SWEEP:
        update |= {"sweep_round": record.sweep_round + 1, "balances": None}
        return update, [], JournalAction.TRANSFER_COMMITTED
    told = record.model_copy(update=update)
    payload: dict[str, object] = {"key": entry.key, "currency": entry.currency, "amount": str(entry.amount)}
    if committed:
        event = outcome(told, "funding.completed", entry.key, now, **payload, order_id=order_id, client_oid=client_oid)
        return update, [event], JournalAction.TRANSFER_COMMITTED
    reason = "refused by an operator" + (f": {note}" if note else "")
    refused = outcome(told, "funding.refused", refusal_identity(record, entry.key), now, **payload, reason=reason)
    return update, [refused], JournalAction.FUNDING_REFUSED
