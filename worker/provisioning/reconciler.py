"""The reconcile loop for one customer: lock, plan, perform, record, until the planner says ``Idle``.

Errors, by class (``worker.exchange.errors``):

- outcome unknown: the intent stays; its settle clock restarts (its age, from the write's first send, goes on:
  ``Intent.first_at_ms``); the planner waits, then resolves it by reading — or, for a key update, by sending it
  again, until ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS`` after its first send: unknown again then, the update is
  blocked for an operator (``planner.update_overdue``), the intent kept with the block.
- retryable / auth-config during a write: the request was not applied, so the fresh intent is cleared (its first
  moment remembered, ``CustomerRecord.not_done``, as for a write found not done by reading); the error propagates
  (the runtime retries with backoff, or slowly for auth/config).
- rate limited: as above, but the customer is re-scheduled for exactly the wait, and the run ends cleanly, so
  waiting for quota uses no retry.
- permanent: the step executors block the step (``Blocked``); at the end of the run ``StepsBlocked`` carries the
  reasons, so the message is dead-lettered for an operator to fix the cause and replay.

A write settled by reading (a create, an issuance, a revocation, a KYC submission, a funding transfer) and found
not done is written again with its first moment kept (``blocks.not_done``), until it has failed for
``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS``: then its step is blocked for an operator (``planner.retry_overdue``).

A busy lock (another reconcile of the same customer) re-schedules the customer a moment later: the event that
woke us is already stored, so nothing is lost.

An operator's retry (``retry_blocked``: ``provisioner customer retry`` or a replayed dead letter) first unblocks
the blocked steps (an issuance blocked with orphan keys still to delete is pending again, so they are deleted
before a key is issued) and takes back the refusals of funding lines refused for a cause a setting fixes
(``worker.provisioning.redecide``), so the planner decides those lines again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import redis
import structlog

from handlers import commands as c
from handlers import steps
from handlers.delivery import DELIVERY_UNTRACKED
from handlers.desired import DesiredState, carries_funding
from handlers.intents import Intent, IssueKeyDetails, UpdateKeyDetails
from handlers.journal import JournalAction
from handlers.planner import plan, update_overdue
from handlers.records import CustomerRecord, NotDone
from worker.exchange import AuthConfigError, OutcomeUnknownError, RateLimitedError, RetryableError
from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.scope import CallScope
from worker.intake import CLOSED_REASON, Refused, refusal_event
from worker.provisioning import audit_steps, caps_steps, kyc_steps, lifecycle_steps, money_steps, subaccount_steps
from worker.provisioning import key_steps as keys
from worker.provisioning.blocks import fail
from worker.provisioning.context import Services, StepContext
from worker.provisioning.redecide import redecide_refused
from worker.provisioning.waits import OWN_WAITS
from worker.store.customers import CustomerStore, Snapshot, Taken
from worker.store.due import DueSchedule
from worker.store.lock import CustomerLock
from worker.store.recovery_marks import undeclared_since

__all__ = ["Reconciler", "RunReport", "StepsBlocked", "step_scope"]

_log = structlog.get_logger(__name__)

EXECUTORS: dict[type[Any], Callable[[Any, StepContext], None]] = {
    c.AuditFromExchange: audit_steps.audit_from_exchange,
    c.CreateSubAccount: subaccount_steps.create_sub_account,
    c.ResolveSubAccount: subaccount_steps.resolve_sub_account,
    c.IssueApiKey: keys.issue_api_key,
    c.ResolveApiKey: keys.resolve_api_key,
    c.UpdateApiKey: keys.update_api_key,
    c.RevokeApiKey: keys.revoke_api_key,
    c.ResolveRevoke: keys.resolve_revoke,
    c.ListKeys: keys.list_keys,
    c.RotateForAge: keys.rotate_for_age,
    c.Transfer: money_steps.transfer,
    c.ResolveTransfer: money_steps.resolve_transfer,
    c.ConfirmTransfer: money_steps.confirm_transfer,
    c.LookForTransfer: money_steps.look_for_transfer,
    c.SeedDailyCaps: caps_steps.seed_daily_caps,
    c.RecheckTransfer: money_steps.recheck_transfer,
    c.RefuseFunding: money_steps.refuse_funding,
    c.ReadBalances: money_steps.read_balances,
    c.SubmitKyc: kyc_steps.submit_kyc,
    c.CheckKyc: kyc_steps.check_kyc,
    c.HoldOffboarding: lifecycle_steps.hold_offboarding,
    c.CloseCustomer: lifecycle_steps.close_customer,
}


def step_scope(ref: str, step: c.Command, *, offboarded: bool) -> CallScope:
    """The scope of ``step``'s exchange calls: this customer's (its rate-limit reservation), in the urgent lane
    when the customer is offboarding or the step revokes a key. Pure."""
    return CallScope(rate_key=ref, urgent=offboarded or isinstance(step, c.RevokeApiKey | c.ResolveRevoke))


class _Republication(TypedDict):
    """What the on-call declared of the upstream's re-publication after the last recovery (``plan``'s arguments)."""

    republished_at_ms: int | None
    stamps_kept: bool
    recovery_open: bool


class StepsBlocked(Exception):  # noqa: N818 - reads as what happened
    """The exchange refused one or more steps for good; ``reasons`` say which and why."""

    def __init__(self, ref: str, reasons: list[str]) -> None:
        super().__init__(f"customer {ref}: " + "; ".join(reasons))
        self.ref = ref
        self.reasons = reasons


@dataclass
class RunReport:
    ref: str
    steps: list[str] = field(default_factory=list)
    outcome: str = "idle"
    """idle, busy, rate_limited, step_limit."""
    reason: str = ""
    wake_at_ms: int | None = None
    waited_pool: str | None = None
    """When rate limited: the pool that said wait (the wait is ``wake_at_ms`` minus now)."""
    waited_ms: int = 0
    blocked: list[str] = field(default_factory=list)
    """Blocks this run marked reported: it must raise them (``StepsBlocked``), whatever else happens."""


FAILURE_BACKSTOP_MS = 15 * 60 * 1000
"""A failed run leaves the customer due this long after its last failure (at least; see ``Reconciler``)."""

StepObserver = Callable[[str, str], None]
"""Called with (command name, outcome) after every step: ok, outcome_unknown, not_sent, rate_limited, ..."""


class Reconciler:
    def __init__(
        self,
        services: Services,
        due: DueSchedule,
        *,
        lock_ttl_ms: int,
        busy_delay_ms: int = 1_000,
        max_steps: int = 64,
        on_step: StepObserver | None = None,
        failure_backstop_ms: int = FAILURE_BACKSTOP_MS,
    ) -> None:
        self.services = services
        self.due = due
        self._lock_ttl_ms = lock_ttl_ms
        self._busy_delay_ms = busy_delay_ms
        self._max_steps = max_steps
        self._on_step = on_step or (lambda name, outcome: None)
        self._failure_backstop_ms = failure_backstop_ms
        """Longer than the longest gap between two retries of a message, so a live retry chain keeps pushing it."""
        self._caps_counted_in: str | None = None
        """The state epoch in which the day's caps were found counted (``_caps_due``)."""

    def lock_for(self, ref: str) -> tuple[CustomerLock, int]:
        """The lock a run of ``ref`` takes, and the moment a run that finds it busy makes the customer due: for
        ``Intake.accept``, which takes it in the script that stores the event (the run then gets ``taken``)."""
        lock = CustomerLock(self.services.store.redis, self.services.store.keys, ref, ttl_ms=self._lock_ttl_ms)
        return lock, self.services.now_ms() + self._busy_delay_ms

    def run(self, ref: str, *, retry_blocked: bool = False, taken: Taken | None = None) -> RunReport:
        """Reconcile ``ref`` until idle. Raises ``StepsBlocked``, ``RetryableError``, ``AuthConfigError``,
        ``LockLost`` or ``CommitRejected`` as described in the module docstring. ``taken``: the lock was asked
        for with the event just stored (``Accepted.taken``); the run starts from its answer instead of asking."""
        report = RunReport(ref)
        try:
            return self._run(ref, report, retry_blocked, taken)
        except StepsBlocked:
            raise  # an operator's, not a retry's
        except Exception as exc:
            # The runtime retries the message; but a Redis outage can drop a delayed retry (dramatiq's consumer
            # forgets the delayed messages it held when it reconnects), and a run woken by a wake-up has no event
            # or intent the sweeps would find. The backstop fires only if the retries stop without a finished run.
            with contextlib.suppress(redis.RedisError):
                self.due.backstop(ref, self.services.now_ms() + self._failure_backstop_ms)
            if report.blocked:
                # blocks were marked reported: no later run would raise them, so this one must (the failure is
                # in the log; the customer is due again through the backstop or its events)
                raise StepsBlocked(ref, report.blocked) from exc
            raise

    def _run(self, ref: str, report: RunReport, retry_blocked: bool, taken: Taken | None) -> RunReport:
        store = self.services.store
        if taken is not None and taken.lock.ref == ref:
            lock, snapshot = taken.lock, taken.snapshot
        else:
            lock, busy_wake_at_ms = self.lock_for(ref)
            snapshot = store.lock_and_snapshot(lock, busy_wake_at_ms=busy_wake_at_ms)
        if snapshot is None:
            report.outcome = "busy"  # the holder will look again (dirty flag); a wake-up is the backstop
            return report
        try:
            ctx = self._context(lock, snapshot, retry_blocked)
            if ctx is None:
                report.reason = "no events"
                self.due.cancel(ref)
                return report
            seen_seq, desired = self._take_in(ctx, snapshot)
            caps_due = self._caps_due()  # read again after a step that seeds the caps
            for _ in range(self._max_steps):
                # Only this run writes the record (fenced), so ctx.record is current; new events are signalled by
                # the dirty flag (taken by every commit) and by the event count: only then are they read again.
                step = self._next_step(desired, ctx.record, caps_due)
                if isinstance(step, c.Idle):
                    if self._idle_ends_run(step, ctx, lock, seen_seq, report):
                        break
                    seen_seq, desired = self._reread(ctx, store, ref)
                    continue
                report.steps.append(type(step).__name__)
                ctx.scope = step_scope(ref, step, offboarded=desired.offboarded)
                commits = ctx.commits
                try:
                    carry_on = self._perform(step, ctx, report)
                finally:
                    ctx.scope = CallScope(rate_key=ref)  # no deadline, weight or lane carries over to the next
                if not carry_on:
                    break
                if isinstance(step, c.SeedDailyCaps):
                    caps_due = self._caps_due()
                if self._changed_since(commits, ctx, lock):
                    seen_seq, desired = self._reread(ctx, store, ref)
            else:
                ctx.open()
                self._hit_step_limit(ref, report)
            self._raise_unreported_blocks(ctx, lock, report)
            return report
        finally:
            with contextlib.suppress(redis.RedisError):  # its time-to-live frees it anyway
                lock.release()

    def _caps_due(self) -> int | None:
        """``FundingLedger.reseed_due``, remembered once it is ``None`` for the state epoch this process works in:
        only ``provisioner recover`` sets a moment to wait for, and it starts a new epoch (a Redis round trip saved
        on every run of a process whose state was never lost, or whose caps are seeded since)."""
        epoch = self.services.store.guard.epoch
        if epoch is not None and epoch.id == self._caps_counted_in:
            return None
        due = self.services.ledger.reseed_due()
        if due is None and epoch is not None:
            self._caps_counted_in = epoch.id
        return due

    def _next_step(self, desired: DesiredState, record: CustomerRecord, caps_due_at_ms: int | None) -> c.Step:
        """The planner's next step for ``record`` now. ``caps_due_at_ms``: ``FundingLedger.reseed_due``, read once
        per run (and after the caps are seeded): a recovery after a loss lifts the halt only once it is stored. A
        revocation of a rotated-out key is planned again knowing when its successor's ``api_key.issued`` reached
        the upstream (``Services.key_delivered_at``, asked only then): not yet, or less than a grace ago, it waits."""
        deliveries: dict[str, int | None] = {}
        while True:
            now_ms = self.services.now_ms()
            step = plan(
                desired,
                record,
                now_ms=now_ms,
                policy=self.services.policy,
                audit_epoch=self.services.store.guard.audit_epoch,
                caps_due_at_ms=caps_due_at_ms,
                deliveries=deliveries,
                **self._republication(record),
            )
            delivered_at = self.services.key_delivered_at
            successor = step.successor if isinstance(step, c.RevokeApiKey) else None
            if successor is None or delivered_at is None or successor in deliveries:
                return step
            issued = next(k.created_at_ms for k in record.keys if k.api_key == successor)
            at = delivered_at(record.ref, successor, issued)
            if at == DELIVERY_UNTRACKED:
                return step  # this deployment delivers no webhooks: the revocation goes on as planned
            deliveries[successor] = at

    def _idle_ends_run(
        self, idle: c.Idle, ctx: StepContext, lock: CustomerLock, seen_seq: int, report: RunReport
    ) -> bool:
        """The planner has nothing to do. Marks the unreported blocks reported (into ``report.blocked``), then ends
        the run (True) when no event arrived since ``seen_seq`` (the customer is released, due at the idle's
        wake-up) or when blocks were just marked reported (the customer is due now, so a fresh run reads the new
        events). False: events arrived and must be read again before planning."""
        report.blocked += self._mark_blocks_reported(ctx)
        ctx.open()
        if not ctx.take_dirty() and self.due.finish_and_release(lock, idle.wake_at_ms, seen_seq=seen_seq):
            report.reason, report.wake_at_ms = idle.reason, idle.wake_at_ms
            return True
        if report.blocked:
            # blocks just marked reported must be raised now, not after more steps that could fail
            # first (then no run would ever raise them): a fresh run reads the new events at once
            self.due.schedule(lock.ref, self.services.now_ms())
            return True
        return False

    @staticmethod
    def _changed_since(commits: int, ctx: StepContext, lock: CustomerLock) -> bool:
        """Whether events arrived during the step just performed (``commits`` were made before it). A step that
        committed has renewed the lock and taken the dirty flag; one that did not renews the lock now, which
        reports the dirty flag."""
        return ctx.take_dirty() if ctx.commits > commits else lock.renew()

    def _hit_step_limit(self, ref: str, report: RunReport) -> None:
        """The run took ``max_steps`` steps without the planner going idle: end it, due again at once."""
        report.outcome = "step_limit"
        self.due.schedule(ref, self.services.now_ms())

    def _raise_unreported_blocks(self, ctx: StepContext, lock: CustomerLock, report: RunReport) -> None:
        """Raise ``StepsBlocked`` for every block this run marked reported, marking first those still unreported
        while the lock is held."""
        if lock.token is not None:
            report.blocked += self._mark_blocks_reported(ctx)
        if report.blocked:
            raise StepsBlocked(ctx.ref, report.blocked)

    def _reread(self, ctx: StepContext, store: CustomerStore, ref: str) -> tuple[int, DesiredState]:
        """Events arrived while we held the customer: read them (and the record) again."""
        snapshot = store.snapshot(ref)
        if snapshot.record is not None:
            ctx.previous = ctx.record = snapshot.record
        return self._take_in(ctx, snapshot)

    def _take_in(self, ctx: StepContext, snapshot: Snapshot) -> tuple[int, DesiredState]:
        """Base the next plans on ``snapshot``. Events that reached a closed customer after its closing run had
        looked (intake refuses them afterwards) are reported as ignored, once. An offboarded customer's KYC
        documents still held are deleted at once (``_drop_documents_at_offboarding``)."""
        ctx.seen_events = frozenset(e.id for e in snapshot.events)
        record = ctx.record
        if record.closed_at_ms is not None:
            new = [e for e in snapshot.events if e.id not in set(record.events_at_close)]
            # a customer closed after a loss of our state: lines of events that come back later may have been paid
            # before the loss, and are accounted for (the planner's late lines), not ignored
            accounted = {e.id for e in new if record.recovered_at_ms is not None and carries_funding(e)}
            late = sorted(e.id for e in new if e.id not in accounted)
            if late:
                now = self.services.now_ms()
                reports = [
                    refusal_event(
                        Refused(
                            "customer_id",
                            CLOSED_REASON,
                            event_id,
                            record.ref,
                            ignored=True,
                            customer_id=record.customer_id,
                        ),
                        now,
                    )
                    for event_id in late
                ]
                ctx.commit(
                    record.model_copy(update={"events_at_close": tuple(sorted(ctx.seen_events))}),
                    journal=[(JournalAction.EVENTS_IGNORED, {"events": late})],
                    outbound=reports,
                )
        desired = self.services.store.desired(ctx.ref, snapshot)
        if desired.offboarded and record.closed_at_ms is None and desired.kyc_documents_event is not None:
            self._drop_documents_at_offboarding(ctx)
        return snapshot.seq, desired

    @staticmethod
    def _drop_documents_at_offboarding(ctx: StepContext) -> None:
        """The customer is offboarded: no KYC submission follows (the planner plans none once offboarded; a pending
        submission is only resolved by reading the status), so the documents still held — of approvals never
        submitted, or that arrived after the offboard — go now, in a commit of their own, not at the close: an
        offboarding can wait long for money or an operator before it closes. Asked only when an approval came
        with documents (one read); a later approval's documents are dropped by the run its arrival wakes."""
        held = ctx.services.store.held_documents(ctx.ref)
        if not held:
            return
        events = sorted(held)
        ctx.commit(
            ctx.record,
            journal=[(JournalAction.KYC_DOCUMENTS_DELETED, {"events": events, "reason": "offboarded"})],
            drop_documents=events,
        )
        _log.info("kyc documents deleted at offboarding", customer_ref=ctx.ref, approvals=len(events))

    def _context(self, lock: CustomerLock, snapshot: Snapshot, retry_blocked: bool) -> StepContext | None:
        record = snapshot.record
        if record is None:
            if not snapshot.events:
                return None
            # a new record takes the newest name-secret version; an existing one keeps its own (never renamed)
            record = CustomerRecord.new(
                lock.ref, snapshot.events[0].customer_id, name_version=self.services.policy.naming.current_version
            )
        # a new record is stored by the run's first commit (usually its first intent: a round trip saved), or alone
        # before the run ends without one (``StepContext.open``)
        ctx = StepContext(
            self.services,
            lock,
            snapshot.record,
            record,
            scope=CallScope(rate_key=lock.ref),
            opening=snapshot.record is None,
        )
        if retry_blocked and any(not b.manual for b in ctx.record.blocked.values()):
            self._unblock(ctx)
        if retry_blocked:
            redecide_refused(ctx)  # lines refused for a cause the operator may have fixed are decided again
        return ctx

    def _republication(self, record: CustomerRecord) -> _Republication:
        """When the re-publication after the last recovery was declared complete, and whether it kept the events'
        own times (read only for a record rebuilt after a loss: one Redis read); and, for a customer without a
        sub-account in a state recovered after a loss, whether that recovery is still open (not declared): one
        Redis read too, never made in a deployment that never lost its state."""
        store = self.services.store
        if record.recovered_at_ms is None:
            if record.sub_account is not None or store.guard.audit_epoch is None:
                return {"republished_at_ms": None, "stamps_kept": False, "recovery_open": False}
            undeclared = undeclared_since(store.redis, store.keys) is not None
            return {"republished_at_ms": None, "stamps_kept": False, "recovery_open": undeclared}
        at, kept = store.redis.mget([store.keys.recovery_republished_at, store.keys.recovery_stamps_kept])
        return {"republished_at_ms": int(at) if at else None, "stamps_kept": kept == "1", "recovery_open": not at}

    @staticmethod
    def _mark_blocks_reported(ctx: StepContext) -> list[str]:
        """Every block no run has reported yet (this run's, or one left by a run that died after blocking), marked
        reported; the run raises them (``StepsBlocked``), so each ends as exactly one dead letter for an
        operator."""
        record = ctx.record
        fresh = {step: b for step, b in record.blocked.items() if not b.reported}
        if not fresh:
            return []
        marked = {**record.blocked, **{step: b.model_copy(update={"reported": True}) for step, b in fresh.items()}}
        ctx.commit(
            record.model_copy(update={"blocked": marked}),
            journal=[(JournalAction.BLOCKS_REPORTED, {"steps": list(fresh)})],
        )
        return [f"{step}: {b.reason}" for step, b in fresh.items()]

    @staticmethod
    def _unblock(ctx: StepContext) -> None:
        """An operator replayed a dead letter: retry every blocked step (not those awaiting a manual decision),
        with new clientOids where money is involved (``retry_counts``). An issuance blocked with orphan keys whose
        deletes went unanswered (``planner.retry_overdue``) is pending again, from now, while nothing else is and
        the customer is open: its orphans are deleted before a key is issued; while another write is pending it
        stays blocked, orphans and all, for the next retry. A key update blocked with its write kept leaves the
        key's access in doubt (``KeyRecord.access_in_doubt``): the next update is sent whatever the record says."""
        record = ctx.record
        retried = [step for step, b in record.blocked.items() if not b.manual]
        orphans = _orphans_to_delete(record, retried)
        if orphans is not None:
            now = ctx.now_ms()
            again = orphans.model_copy(update={"started_at_ms": now, "first_at_ms": now})
            record = record.model_copy(update={"pending": again})
        # an issuance whose orphans cannot stand pending now (another write is): kept blocked, orphans and all, for
        # the next retry — lifted, they would be forgotten and the key issued again beside them
        kept = [s for s in retried if record.blocked[s].orphans and (orphans is None or s != _issue_of(orphans))]
        retried = [s for s in retried if s not in kept]
        counts = dict(record.retry_counts)
        for step in retried:
            counts[step] = counts.get(step, 0) + 1
        # a key update blocked with its write kept (every send unanswered): the key holds the old access or the one
        # sent, whatever the record says (blocks written before ``access_in_doubt`` included)
        doubted = {
            b.intent.token for s in retried if (b := record.blocked[s]).intent is not None and _updates(b.intent)
        }
        if doubted:
            keys = tuple(
                k.model_copy(update={"access_in_doubt": True}) if k.api_key in doubted else k for k in record.keys
            )
            record = record.model_copy(update={"keys": keys})
        blocked = {step: b for step, b in record.blocked.items() if b.manual or step in kept}
        if steps.SWEEP in retried:
            record = record.model_copy(update={"balances": None})  # read again what is there now
        ctx.commit(
            record.model_copy(update={"blocked": blocked, "retry_counts": counts}),
            journal=[(JournalAction.REPLAYED, {"retried": retried})],
        )

    def _perform(self, step: c.Command, ctx: StepContext, report: RunReport) -> bool:
        """Run one step. Returns False when the run must end now (rate limited)."""
        name = type(step).__name__
        intent_before = ctx.record.pending
        log = _log.bind(customer_ref=ctx.ref, step=name)
        try:
            EXECUTORS[type(step)](step, ctx)
        except OutcomeUnknownError as exc:
            pending = ctx.record.pending
            if pending is not None:
                now = self.services.now_ms()
                # the settle delay counts from now; the write's first moment (the age of its outcome) stays
                restarted = pending.model_copy(update={"started_at_ms": now})
                ctx.commit(
                    ctx.record.model_copy(update={"pending": restarted}),
                    journal=[
                        (
                            JournalAction.OUTCOME_UNKNOWN,
                            {"kind": pending.kind.value, "token": pending.token, "error": str(exc)},
                        )
                    ],
                )
                overdue = update_overdue(restarted, now, self.services.policy)
                if overdue is not None:
                    # kept with the block: the retry that lifts it leaves the key's access in doubt (``_unblock``)
                    fail(ctx, *overdue, keep_intent=True)
            log.warning("exchange outcome unknown", error=str(exc))
            self._on_step(name, "outcome_unknown")
            return True
        except RateLimitedError as exc:
            self._clear_fresh_intent(ctx, intent_before, exc)
            ctx.open()
            wait_ms = exc.retry_after_ms if exc.retry_after_ms is not None else 1_000
            report.outcome = "rate_limited"
            known = ENDPOINTS.get(exc.endpoint)
            pool = known.pool if known else (exc.endpoint if exc.endpoint in OWN_WAITS else "unknown")
            report.waited_pool, report.waited_ms = pool, max(wait_ms, 1)
            report.wake_at_ms = self.services.now_ms() + max(wait_ms, 1)
            self.due.schedule(ctx.ref, report.wake_at_ms)
            self._on_step(name, "rate_limited")
            return False
        except (RetryableError, AuthConfigError) as exc:
            self._clear_fresh_intent(ctx, intent_before, exc)
            self._on_step(name, exc.kind)
            raise
        self._on_step(name, "ok")
        return True

    @staticmethod
    def _clear_fresh_intent(ctx: StepContext, before: object, exc: Exception) -> None:
        """The write this step recorded was not applied (not sent, refused at the gateway, rate limited). Only an
        intent the step itself started is cleared: a re-send that resolves an earlier intent leaves it standing,
        since the earlier send's outcome is still unknown."""
        pending = ctx.record.pending
        if pending is not None and before is None:
            # the same write written again keeps its first moment (``StepContext.write_intent``)
            undone = NotDone.of(pending, ctx.now_ms())
            ctx.settle(
                ctx.record.model_copy(update={"not_done": undone}),
                JournalAction.NOT_SENT,
                {"kind": pending.kind.value, "token": pending.token, "error": str(exc)},
            )


def _issue_of(intent: Intent) -> steps.StepId:
    assert isinstance(intent.details, IssueKeyDetails)
    return steps.issue(intent.details.generation)


def _updates(intent: Intent) -> bool:
    return isinstance(intent.details, UpdateKeyDetails)


def _orphans_to_delete(record: CustomerRecord, retried: list[steps.StepId]) -> Intent | None:
    """Of the ``retried`` steps, an issuance blocked with orphan keys still to delete (``planner.retry_overdue``):
    its intent, to stand pending again — only while nothing else is pending and the customer is open."""
    if record.pending is not None or record.closed_at_ms is not None:
        return None
    for step in retried:
        block = record.blocked[step]
        if block.orphans:
            return block.intent
    return None
