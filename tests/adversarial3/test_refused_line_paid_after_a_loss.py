"""An operator's ``settle-transfer --refused`` ("nothing moved and the line must not be sent", told upstream as
``funding.refused``) lives only in the customer's record in Redis. After Redis loses its data, the re-published
line is looked for (157a275), found unpaid — which is true — and sent: a line refused for good is paid, and the
upstream, which heard ``funding.refused``, now hears ``funding.completed`` for the same line."""

from __future__ import annotations

import shutil

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, set_faults, topup, violations_after
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.recovery import recover


@pytest.mark.parametrize("heard_given", [False, True], ids=["heard-not-given", "heard-given"])
def test_a_line_an_operator_refused_is_paid_after_a_loss(redis_url: str, key_prefix: str, heard_given: bool) -> None:
    """Scenario: exchange ``accept``, worker ``unknown``, ledger context ``client_oid``. While the exchange stands
    distrusted (an earlier double elsewhere), a 250 USDT top-up's send meets a 5xx (nothing moved); the ledger's
    silence is not trusted, so the line is blocked for an operator. The on-call finds no transfer under the clientOid
    and, the customer having withdrawn the request, answers ``--refused`` (true: nothing moved, and it must not be
    sent); the upstream hears ``funding.refused``. Later Redis loses everything; ``provisioner recover``; the upstream
    re-publishes the customer's events.

    What happens: the audit finds the sub-account; ``LookForTransfer`` finds nothing of the line in the ledger
    (``transfer.not_found``); the cap has room; the line is sent and paid (``transfer.committed``,
    ``funding.completed``). ``provisioner verify`` with what the upstream heard reports "the upstream was told the
    truth: …-topup#0: told funding.refused, but paid".

    Why it is wrong: every funding line ends with exactly one verdict, and a refused line is never sent. The
    exchange cannot tell a refused line from one never decided, and the worker guesses "never decided". Where the
    exchange's records cannot tell, the worker must not guess: a line whose event predates the loss and that the
    ledger shows unpaid may have been refused before it (by an operator, or by a daily cap of another day), so it
    needs an operator's word (or the refusals the upstream heard, given to ``recover``) before money moves.

    Now: without what the upstream heard the unpaid line waits for an operator; with it, it is refused again
    without asking and the upstream hears no second verdict."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "client_oid"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "refused-then-lost")
        ev = events_for("refused-then-lost", funding=())
        late = topup("refused-then-lost", "topup", 5, [("USDT", "250")])
        step = "fund:refused-then-lost-topup#0"
        rig.app.state.distrust("test: a double payment of another customer, being dealt with")
        set_faults(rig, "transfer", **{"5xx": 1.0})  # refused before the exchange committed anything
        rig.publish(late)
        rig.run(ref)
        set_faults(rig, "transfer", **{"5xx": 0.0})
        rig.settle(ref)
        assert [s for s, b in rig.record(ref).blocked.items() if b.manual] == [step]
        rig.app.state.trust()
        settle_transfer(
            rig.app, ref, step, verdict=TransferVerdict.REFUSED, who="on-call", note="customer withdrew the request"
        )
        rig.settle(ref)
        assert paid_to(rig, uid) == []
        heard = outbound(rig.app)
        assert [e["key"] for e in heard if e["type"] == "funding.refused"] == ["refused-then-lost-topup#0"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            given = outcomes_from_events(heard) if heard_given else None
            recover(app, reason="test: Redis restarted without persistence", heard=given)
            published = [ev["created"], ev["kyc"], late]
            ref = redeliver(app, published)
            settle_with(rig, app, ref)
            violations = violations_after(rig, app, published, heard)
            truth = "the upstream was told the truth"
            told = [f"{v.invariant}: {v.detail}" for v in violations if v.invariant == truth]
            paid = paid_to(rig, uid)
            assert paid == [] and told == [], f"a refused line was paid ({len(paid)} transfer(s)): {told}"
            record = app.store.load(ref)
            assert record is not None
            if heard_given:
                assert record.transfers["refused-then-lost-topup#0"].status.value == "refused"
                assert not record.blocked
                assert not [e for e in outbound(app) if e["type"].startswith("funding.")]
            else:
                assert record.blocked[step].manual and "may have been refused" in record.blocked[step].reason
        finally:
            app.close()
    finally:
        rig.close()
