"""A funding line blocked for an operator's verdict because every send went unanswered past the bound (adv56,
f661051: manual, intent kept, counted in doubt, the upstream told ``provisioning.failed`` for ``fund:LINE``) is
forgotten across a loss of our state when the recovery is given what the upstream heard with ``--heard-complete``:
the heard file's ``provisioning.failed`` of ``fund:LINE`` is skipped, the line counts as "never decided", and after
the declaration it is sent again."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest

from handlers import steps
from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound, paid_to, set_faults, total
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from tests.provisioning.test_stuck_unknown import _drive
from worker.heard import outcomes_from_events
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis

BOUND_S = 120
CAP = Decimal("1000")  # the rig's per-customer USDT cap


def _blocked_in_doubt_then_lost(rig: Rig, customer: str) -> tuple[str, str, str, dict[str, dict[str, object]]]:
    """The adv56 scenario up to the manual block, then Redis loses everything: (ref, uid, line, events)."""
    ev = events_for(customer, funding=(("USDT", "600"),))
    (ref,) = rig.publish(ev["created"])
    rig.settle(ref)
    uid = rig.record(ref).sub_account.uid
    set_faults(rig, "transfer", drop=1.0)  # executed, answer lost
    rig.publish(ev["kyc"])
    rig.run(ref)
    set_faults(rig, "transfer", drop=0.0, **{"5xx": 1.0})  # every later send refused before anything is done
    _drive(rig, ref, for_ms=10 * BOUND_S * 1000, until_blocked=True)
    line = f"{ev['kyc']['id']}#0"
    block = rig.record(ref).blocked.get(steps.fund(line))
    assert block is not None and block.manual and block.intent is not None, "precondition: the adv56 manual block"
    assert total(paid_to(rig, uid)) == Decimal("600"), "precondition: the first send moved the money"
    told = [(e["type"], e.get("step")) for e in outbound(rig.app)]
    assert ("provisioning.failed", steps.fund(line)) in told, f"precondition: the upstream was told ({told})"
    set_faults(rig, "transfer", **{"5xx": 0.0})  # the exchange recovers
    return ref, uid, line, ev


def test_a_line_blocked_in_doubt_is_paid_again_after_a_loss_with_heard_complete(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: the exchange executes a repeated clientOid (``accept``, the setting says so) and its ledger lists a
    transfer 10 min late while ``PROVISIONER_LEDGER_LAG_MS`` says 30 s (the README's "Settings the exchange
    contradicts"). An approval asks for 600 USDT (per-customer cap 1000). The first send is executed, its answer
    lost; every later send is answered 5xx. Past ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS`` (2 min) the line is
    blocked for an operator (f661051: manual, intent kept, counted in doubt) and the upstream is told
    ``provisioning.failed`` for ``fund:LINE``. Redis then loses everything. Nothing was waiting for delivery, so the
    on-call runs ``provisioner recover --heard received.jsonl --heard-complete`` with every event the upstream
    received (that ``provisioning.failed`` included); the upstream re-publishes; the on-call declares it.

    What happens: ``outcomes_from_events`` keeps only ``funding.*`` and ``double:`` events, so the line's
    ``provisioning.failed`` of ``fund:LINE`` is dropped; the record is rebuilt with the outcomes heard complete. The
    line is looked for in the ledger (still silent: the first send is 10 min late), found nowhere, and — the file
    being complete, the line "never decided" — sent after the declaration under clientOid attempt 0 again. The
    exchange executes it: 1200 USDT paid to a customer capped at 1000 (flagged later as ``double:LINE``).

    Why it is wrong: never a double transfer; the per-customer cap never overrun. Before the loss the worker had
    judged exactly this line's ledger silence no proof (adv56) and kept it for an operator's verdict, and told the
    upstream so. The heard file carries that verdict-in-doubt; ``--heard-complete`` means "nothing was waiting for
    delivery", not "every line the file does not settle was never sent" — a line the upstream was told is in doubt
    was sent. Without ``--heard`` (or without ``--heard-complete``) the same line waits for an operator, so giving
    the recovery more evidence makes it less safe.

    Suggested fix: read ``provisioning.failed`` of ``fund:<line>`` in ``worker.heard`` (a third verdict, "in
    doubt"), and have the audit record such a line as a manual block keeping its intent (counted in doubt), or at
    least make ``LookForTransfer.ask_if_unfound`` true for it, so that an unfound line the upstream heard blocked
    waits for ``customer settle-transfer`` as before the loss.

    Likelihood: low — needs a ledger slower than its setting for longer than the bound (a day by default), every
    re-send failing meanwhile, then a loss of Redis with ``--heard-complete``; the effect is a silent-until-rechecked
    second payment of real money past the customer's cap.
    """
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_lag_ms": 600_000})
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_CLIENT_OID_BEHAVIOUR="accept",
        PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S),
    )
    try:
        ref, uid, line, ev = _blocked_in_doubt_then_lost(rig, "adv59-heard-complete")
        heard = outbound(rig.app)  # everything the upstream received: nothing was waiting for delivery
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis lost its data", heard=outcomes_from_events(heard), heard_complete=True)
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            declare_republished(app)
            settle_with(rig, app, ref)
            paid = [t["amount"] for t in paid_to(rig, uid)]
            record = app.store.load(ref)
            assert total(paid_to(rig, uid)) <= CAP and paid == ["600"], (
                f"paid {paid} USDT to a customer capped at {CAP}: line {line}, blocked in doubt before the loss and "
                f"told provisioning.failed, was sent again after recover --heard-complete (blocked now: "
                f"{sorted(record.blocked)})"
            )
        finally:
            app.close()
    finally:
        rig.close()


@pytest.mark.parametrize(
    ("mode", "given", "complete"),
    [("accept", False, False), ("accept", True, False), ("dedupe", True, True)],
    ids=["no-heard", "heard-incomplete", "dedupe-heard-complete"],
)
def test_what_holds_for_a_line_blocked_in_doubt_across_a_loss(
    redis_url: str, key_prefix: str, mode: str, given: bool, complete: bool
) -> None:
    """The same line across the same loss: without ``--heard``, or with it but not complete, the unfound line waits
    for an operator (manual ``fund:LINE``, nothing sent, nothing told completed); with a complete file on an
    exchange that deduplicates a repeated clientOid too (the file told the line blocked and nothing since: its
    customer's outcomes are not all known, ``worker.heard.outcomes_known``)."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": mode, "ledger_lag_ms": 600_000})
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_CLIENT_OID_BEHAVIOUR=mode,
        PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS=str(BOUND_S),
    )
    try:
        ref, uid, line, ev = _blocked_in_doubt_then_lost(rig, f"adv59-holds-{mode}-{given}-{complete}")
        heard = outbound(rig.app)
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            outcomes = outcomes_from_events(heard) if given else None
            recover(app, reason="test: Redis lost its data", heard=outcomes, heard_complete=complete)
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            declare_republished(app)
            settle_with(rig, app, ref)
            assert [t["amount"] for t in paid_to(rig, uid)] == ["600"]
            record = app.store.load(ref)
            completed = [e["key"] for e in outbound(app) if e["type"] == "funding.completed"]
            block = record.blocked.get(steps.fund(line))
            assert block is not None and block.manual and not completed, (record.blocked, completed)
        finally:
            app.close()
    finally:
        rig.close()
