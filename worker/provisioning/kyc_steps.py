"""Proxy KYC steps: submit the sealed documents once, then follow the review until PASS or REJECT.

Documents are opened only to build the request, never logged, and deleted in the same commit that records the
submission (they are "not kept after submission"), with those of earlier approvals the submission superseded;
once the KYC passes, every document still held (a later approval's) is deleted too, as they all are once the
customer is offboarded (``Reconciler._drop_documents_at_offboarding``; nothing is submitted after an offboard) and
when it is closed. Documents sealed under an encryption key the keyring no longer holds block the step, naming
the key id (retrying could not open them).
"""

from __future__ import annotations

from collections.abc import Sequence

from handlers import steps
from handlers.commands import CheckKyc, SubmitKyc
from handlers.intents import SubmitKycDetails
from handlers.journal import JournalAction
from handlers.records import IntentKind, KycProgress, KycStage
from worker.exchange import PermanentError, RequestValidationError
from worker.exchange.models import KycState
from worker.exchange.requests import KycSubmission, build
from worker.provisioning.blocks import fail, not_done
from worker.provisioning.context import StepContext
from worker.provisioning.outbound import outcome
from worker.provisioning.waits import KEY_ROLLOUT_WAIT, own_wait

__all__ = ["KEY_ROLLOUT_GRACE_MS", "check_kyc", "submit_kyc"]

KEY_ROLLOUT_GRACE_MS = 6 * 3_600_000
"""How long after its approval occurred KYC documents sealed under a key this process does not hold are waited
for (a rolling deploy of a new first key) before the KYC step is blocked for an operator."""
KEY_ROLLOUT_RETRY_MS = 60_000


def submit_kyc(cmd: SubmitKyc, ctx: StepContext) -> None:
    s = ctx.services
    held = s.store.held_documents(ctx.ref)
    sealed = s.store.sealed_documents(ctx.ref, cmd.event_id)
    if sealed is None:
        fail(ctx, steps.KYC, "the KYC documents are no longer held; publish the approval again with its documents")
        return
    if not s.keyring.holds(sealed.key_id):
        occurred_ms = s.store.event_occurred_ms(ctx.ref, cmd.event_id)
        if occurred_ms is not None and ctx.now_ms() - occurred_ms < KEY_ROLLOUT_GRACE_MS:
            # sealed by a process restarted with a new first key, read by one not restarted yet: a rollout, not a
            # dropped key — looked at again until this process (or another) holds it
            raise own_wait(
                KEY_ROLLOUT_WAIT,
                f"the KYC documents are sealed under encryption key {sealed.key_id!r}, which this process does not "
                "hold yet (a rollout of PROVISIONER_ENCRYPTION_KEYS in progress?)",
                KEY_ROLLOUT_RETRY_MS,
            )
        fail(
            ctx,
            steps.KYC,
            f"the KYC documents are sealed under encryption key {sealed.key_id!r}, which PROVISIONER_ENCRYPTION_KEYS "
            "no longer holds: list that key again (then run `provisioner keys reseal`), or publish the approval "
            "again with its documents",
        )
        return
    try:
        submission = build(KycSubmission, "submit_kyc", client_uid=cmd.uid, **s.keyring.open(sealed))
    except RequestValidationError as exc:
        fail(ctx, steps.KYC, f"the KYC documents do not meet KuCoin's rules: {exc.field}")
        return
    ctx.write_intent(IntentKind.SUBMIT_KYC, cmd.event_id, SubmitKycDetails(uid=cmd.uid, event_id=cmd.event_id))
    try:
        ctx.exchange.kyc.submit(submission)
    except PermanentError as exc:
        rows = ctx.exchange.kyc.status(client_uids=[cmd.uid])
        shown = next((r.status for r in rows if r.client_uid == cmd.uid), KycState.NONE)
        if shown in (KycState.PASS, KycState.PROCESS):
            # KuCoin already holds a KYC of this sub-account (submitted before our record of it was lost): it
            # is followed from its status, read again at once, never submitted twice
            _submitted(ctx, cmd.event_id, KycStage.SUBMITTED, check_at_ms=ctx.now_ms())
            return
        fail(ctx, steps.KYC, f"the exchange refused the KYC submission: {exc}")
        return
    # the planner submits the latest approval with documents among the events it planned from: the others it saw
    # are superseded and never submitted, so they go with this one (a later approval it did not see stays)
    superseded = sorted(held & ctx.seen_events - {cmd.event_id})
    _submitted(ctx, cmd.event_id, KycStage.SUBMITTED, superseded=superseded)


def check_kyc(cmd: CheckKyc, ctx: StepContext) -> None:
    """Read the KYC status. With a submission intent pending, it tells whether the submission arrived."""
    ctx.heartbeat()
    rows = ctx.exchange.kyc.status(client_uids=[cmd.uid])
    state = next((r for r in rows if r.client_uid == cmd.uid), None)
    status = state.status if state is not None else KycState.NONE
    record = ctx.record
    if record.pending is not None and record.pending.kind is IntentKind.SUBMIT_KYC:
        previous = record.kyc
        reason = state.reject_reason if state is not None else None
        # A resubmission after a REJECT: the old verdict still showing is no evidence that the new one arrived.
        stale = (
            previous is not None
            and previous.stage is KycStage.REJECT
            and status is KycState.REJECT
            and reason == previous.reason
        )
        if status is KycState.NONE or stale:
            # submitted again, its first attempt's moment kept, unless every attempt failed for the bound
            not_done(ctx, record, JournalAction.NOT_COMMITTED, {"kind": "submit_kyc", "token": record.pending.token})
        else:
            _submitted(ctx, record.pending.token, KycStage.SUBMITTED)
        return
    progress = record.kyc
    assert progress is not None
    now = ctx.now_ms()
    if status is KycState.PASS:
        record = record.model_copy(update={"kyc": progress.model_copy(update={"stage": KycStage.PASS})})
        ctx.settle(
            record,
            JournalAction.KYC_PASSED,
            {"event_id": progress.event_id},
            outbound=[outcome(record, "kyc.passed", progress.event_id, now, event_id=progress.event_id)],
            drop_all_documents=True,  # nothing is submitted after a PASS: documents of later approvals neither
        )
    elif status is KycState.REJECT:
        reason = (state.reject_reason if state is not None else None) or "rejected without a reason"
        record = record.model_copy(
            update={"kyc": progress.model_copy(update={"stage": KycStage.REJECT, "reason": reason})}
        )
        ctx.settle(
            record,
            JournalAction.KYC_REJECTED,
            {"event_id": progress.event_id, "reason": reason},
            outbound=[
                outcome(record, "kyc.rejected", progress.event_id, now, event_id=progress.event_id, reason=reason)
            ],
        )
    else:
        later = now + ctx.services.policy.kyc_poll_ms
        record = record.model_copy(
            update={"kyc": progress.model_copy(update={"stage": KycStage.PROCESS, "next_check_ms": later})}
        )
        ctx.commit(record, journal=[(JournalAction.KYC_CHECKED, {"status": status.value})])


def _submitted(
    ctx: StepContext,
    event_id: str,
    stage: KycStage,
    *,
    superseded: Sequence[str] = (),
    check_at_ms: int | None = None,
) -> None:
    """Record the submission of ``event_id``'s documents (and of those it superseded) and drop them; the status
    is read at ``check_at_ms`` (default: a poll interval from now)."""
    at = ctx.now_ms() + ctx.services.policy.kyc_poll_ms if check_at_ms is None else check_at_ms
    progress = KycProgress(event_id=event_id, stage=stage, next_check_ms=at)
    ctx.settle(
        ctx.record.model_copy(update={"kyc": progress}),
        JournalAction.KYC_SUBMITTED,
        {"event_id": event_id},
        drop_documents=[event_id, *superseded],
    )
