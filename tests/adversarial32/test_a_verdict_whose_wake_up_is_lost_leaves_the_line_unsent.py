"""``operator.settle_transfer`` records an operator's verdict in the fenced commit (the manual block goes, the line is
cleared to be sent again), then gives back reservations, then makes the customer due (``app.due.schedule``) — a
separate Redis write. The commit script does not touch the due schedule, and nothing else looks after the customer
once the block is gone: the stale scan re-schedules only customers with an unseen event or a pending intent, the
``CustomersBlocked`` gauge follows the block index the commit just cleared. A verdict whose wake-up is lost (the
command dies, or Redis refuses the ZADD, after the commit) leaves the line neither sent nor told until the customer's
next wake-up: the live key's age rotation, 90 days later."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, topup, total
from tests.core.harness import Crash, Rig
from worker.provisioning.operator import settle_transfer

pytestmark = pytest.mark.redis

DAY_MS = 86_400_000


def test_a_not_committed_verdict_whose_wake_up_is_lost_is_never_acted_on(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: correct settings (``PROVISIONER_CLIENT_OID_BEHAVIOUR=unknown``, the default), a ledger whose entries
    name no ids. Customer X's 250 USDT top-up is recorded as an intent and the worker dies before the request leaves
    (nothing moved). Customer Y is paid 250 USDT meanwhile, so the ledger cannot tell whose 250 it lists: X's line is
    blocked for an operator (``provisioning.failed``, dead letter, ``CustomersBlocked``). On-call checks with KuCoin
    and runs ``provisioner customer settle-transfer X fund:… --not-committed``. The fenced commit lands (block gone,
    the clientOid cleared to be sent again); the next write, ``app.due.schedule`` (ZADD), is lost: the CLI process
    dies (SSH hang-up, OOM, Ctrl-C) or Redis refuses it (a connection blip, a failover). The workers run on as in
    production: the scheduler's stale scan every 30 s, the due customers claimed and reconciled, for a whole day.

    What happens: nothing ever runs X again. The commit cleared the block index (``CustomersBlocked`` resolves) and
    X has no pending intent and no unseen event (the stale scan skips it); X's only wake-up is its key's age
    rotation, 90 days out. The line the operator cleared is not sent, and the upstream hears neither
    ``funding.completed`` nor ``funding.refused``. Re-running the command answers "no transfer awaiting a manual
    decision" (the verdict is recorded), so the operator takes it as done; the block's dead letter, the one pointer
    left, expires after 7 days (and reads as obsolete: its block is gone).

    Why it is wrong: "never a customer stuck with no operator path" and the upstream's funding request answered —
    the step is re-run from what is stored only when something makes the customer due, and what is stored makes
    nothing due. ``DeadLetters.drop_resolved``'s own contract says "settle-transfer scheduled it".

    Suggested fix: make the verdict's commit schedule the customer in the same script (a due-now effect of the
    commit, as ``close`` removes it), or have the stale scan also cover customers whose record holds a funding line
    neither recorded nor blocked (desired but undecided), or schedule before the commit (a wake-up without a
    verdict is harmless: the run finds the block and goes idle).

    Likelihood: low (a process death or a Redis error in the instant between two writes of an operator command);
    impact: a funding line an operator cleared stays unsent and untold for up to 90 days with no alert.
    """
    config = SandboxConfig.from_dict({"ledger_context": "none"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref_x, uid_x = onboard_with_a_key(rig, "verdict-x")
        ref_y, _ = onboard_with_a_key(rig, "verdict-y")

        rig.transport.crash("POST", "/api/v1/broker/nd/transfer", when="before")
        rig.publish(topup("verdict-x", "t1", 5, [("USDT", "250")]))
        with pytest.raises(Crash):
            rig.run(ref_x)  # the intent is recorded; the worker dies before the request leaves: nothing moved
        rig.publish(topup("verdict-y", "t1", 6, [("USDT", "250")]))
        rig.settle(ref_y)  # Y's 250 USDT: the ledger (no ids) cannot tell it from X's
        rig.clock.advance_ms(60_000)  # X's lock has expired; the settle delay passes
        rig.settle(ref_x)
        manual = [step for step, b in rig.record(ref_x).blocked.items() if b.manual]
        assert manual == ["fund:verdict-x-t1#0"], rig.record(ref_x).blocked
        assert paid_to(rig, uid_x) == []

        due = rig.app.due
        # the command dies in the instant after its verdict is committed (the fix makes the customer due before it)
        store = rig.app.store
        commit = store.commit

        def commit_then_die(*args: Any, **kwargs: Any) -> Any:
            commit(*args, **kwargs)
            raise Crash("the command dies right after the verdict is committed")

        store.commit = commit_then_die  # type: ignore[method-assign]
        with pytest.raises(Crash):
            settle_transfer(rig.app, ref_x, manual[0], committed=False, who="oncall", note="KuCoin: no such transfer")
        store.commit = commit  # type: ignore[method-assign]
        record = rig.record(ref_x)
        assert not record.blocked and record.pending is None, "the verdict is recorded"

        # the workers run on as in production for a day: the stale scan, the due customers claimed and reconciled
        stale_ms = rig.settings.sweep_stale_seconds * 1000
        ran: list[str] = []
        end = int(rig.clock() * 1000) + DAY_MS
        while int(rig.clock() * 1000) < end:
            now = int(rig.clock() * 1000)
            due.sweep(now, stale_ms=stale_ms)
            for claimed in due.claim_due(now):
                due.done(claimed)
                ran.append(claimed)
                rig.run(claimed)
            rig.clock.advance_ms(600_000)  # (a scan every 30 s finds no more: nothing changes in between)

        paid = total(paid_to(rig, uid_x))
        told: list[dict[str, Any]] = [
            e
            for e in outbound_of(rig, "funding.completed") + outbound_of(rig, "funding.refused")
            if e["customer_ref"] == ref_x
        ]
        wake = due.next_due_ms(ref_x)
        assert paid == Decimal(250) or told, (
            f"a day after the operator's verdict, X's line is unsent ({paid} USDT paid) and untold; no run of X "
            f"(runs: {ran}); X is next due in {None if wake is None else (wake - end) // DAY_MS} days"
        )
    finally:
        rig.close()
