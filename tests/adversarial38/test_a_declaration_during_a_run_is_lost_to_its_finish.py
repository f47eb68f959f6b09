"""``provisioner recover --republished`` "makes every customer due" (``declare_republished``: ``schedule_many``)
from outside the customers' locks, but a run that went idle replaces its customer's wake-up in
``DueSchedule.finish_and_release`` (``ZADD`` of its own wake, or ``ZREM`` for none) whatever was scheduled
meanwhile: it guards against new events (the sequence) and busy runs (the dirty flag), not against a schedule.
A customer whose run planned "waits for the declaration" just before it and finished just after loses the
declaration's wake-up, and nothing else wakes it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import pytest

from tests.adversarial.helpers import onboard_with_a_key, paid_to, stamped_now
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import declare_republished, recover
from worker.store.due import DueSchedule

pytestmark = pytest.mark.redis

HOUR_MS = 3_600_000


def declared_in_the_instant_before_the_finish(app: Any, due: DueSchedule) -> Callable[[], None]:
    """The on-call's ``recover --republished`` lands between the run's last plan and its ``finish_and_release``
    (the scheduler has not claimed the customer yet: it ticks every 0.25 s). Returns an undo."""
    original = due.finish_and_release
    fired: list[int] = []

    def finish_and_release(lock: Any, wake_at_ms: int | None, *, seen_seq: int) -> bool:
        if not fired:
            fired.append(declare_republished(app, stamps_kept=True))
        return original(lock, wake_at_ms, seen_seq=seen_seq)

    due.finish_and_release = finish_and_release  # type: ignore[method-assign]
    return lambda: setattr(due, "finish_and_release", original)


def run_the_scheduler_for(rig: Rig, app: Any, hours: int) -> None:
    """What the workers do meanwhile: each hour the stale scan, then a reconcile of every customer due."""
    for _ in range(hours):
        rig.clock.advance_ms(HOUR_MS)
        now = int(rig.clock() * 1000)
        app.due.sweep(now, stale_ms=120_000)
        for ref in app.due.claim_due(now):
            app.due.done(ref)
            app.reconciler.run(ref)


def test_a_top_up_waiting_for_the_declaration_is_never_woken_when_the_declaration_lands_during_a_run(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: Redis lost everything; ``provisioner recover``; the upstream re-publishes (created, approved: the
    record is audited, the key whose secret was lost replaced). Meanwhile the customer asks for a live top-up of
    100 USDT (stamped after the loss). Its run plans "line … waits until the upstream's re-publication after the
    state loss is declared complete" (no wake-up: "the declaration makes every customer due"). In the instant
    between that plan and the run's ``finish_and_release``, the on-call runs ``provisioner recover --republished``
    with ``--stamps-kept`` (``SET recovery_republished_at``; ``ZADD … LT now`` for every customer), before any
    scheduler tick claims it. (Woken after the declaration, the line is sent; without ``--stamps-kept`` it is
    blocked for an operator — either way decided or alerted.)

    What happens: the run's ``finish_and_release`` then writes its own idle wake-up over the declaration's — the
    replacement key's age rotation, 90 days away — and drops the customer from the inbox. The stale scan finds
    nothing to re-schedule (no unseen event, no intent), the declaration is not repeated, the recovery gauges read
    0 (declared), the customer is not blocked: a day later the top-up has no verdict, nothing was sent, and no
    alert fires. It waits for the key's 90-day rotation.

    Why it is wrong: README 4, "no wake-up is lost to a race"; a line that "waits — nothing sent, no operator
    asked" relies on the declaration's wake-up, which a concurrent run can erase. ``finish_and_release``'s own
    docstring rests on "only this customer's own runs schedule its later wake-ups", which ``declare_republished``
    (and ``settle-transfer``, ``recover --adopt``, ``customer retry``, ``keys reseal``) contradicts.

    Suggested fix: let an outside schedule raise the customer's dirty flag as a busy run does (``schedule`` via a
    script that also ``SET dirty`` when the lock is held, or bump a per-customer "poke" counter that
    ``finish_and_release`` compares like ``seen_seq``); or have ``finish_and_release`` keep an earlier entry
    (``ZADD LT`` when a wake exists, and not ``ZREM`` an entry scheduled after the run took the lock).

    Likelihood: low-medium per customer, but certain to hit some in a large recovery: the declaration is made
    while the re-publication's runs are in full flow (thousands of customers idling "waiting for the declaration"),
    and the window is a run's last plan → finish (a few ms) before the next 0.25 s scheduler tick. Impact: a
    customer's funding silently undecided for up to 90 days.
    """
    rig = Rig(redis_url, key_prefix)
    try:
        ref, uid = onboard_with_a_key(rig, "declared")
        ev = events_for("declared", funding=())
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(10 * 60_000)

            top_up = stamped_now(rig, "declared", "topup-live", [("USDT", "100")])
            assert isinstance(app.intake.accept(top_up), Accepted)
            undo = declared_in_the_instant_before_the_finish(app, app.reconciler.due)
            try:
                report = app.reconciler.run(ref)  # the run the top-up's message starts
            finally:
                undo()
            # the run planned "waits for the re-publication" before the declaration landed; the declaration's dirty
            # flag made it look again before it let go: it converged, the line decided
            assert report.reason == "converged" or "re-publication" not in report.reason, report
            assert app.redis.get(app.keys.recovery_republished_at) is not None, "precondition: declared"

            run_the_scheduler_for(rig, app, hours=24)
            record = app.store.load(ref)
            line = f"{top_up['id']}#0"
            wake = app.due.next_due_ms(ref)
            assert line in record.transfers or f"fund:{line}" in record.blocked, (
                f"a day after the declaration the top-up has no verdict nor a block (paid {paid_to(rig, uid)}); "
                f"the customer's next wake-up is {(wake - int(rig.clock() * 1000)) // HOUR_MS if wake else None} h away"
            )
        finally:
            app.close()
    finally:
        rig.close()
