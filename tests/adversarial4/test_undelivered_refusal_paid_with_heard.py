"""With ``provisioner recover --heard`` the worker takes the file as *every* verdict the worker gave before the
loss (``outcomes_heard=True`` turns off ``ask_if_unfound``). But a verdict is heard only once delivered, and the
outbound stream and webhook backlog were lost with Redis: a refusal written but not yet delivered is in no heard
file, and the refused line is paid."""

from __future__ import annotations

import shutil

from handlers.events import parse_event
from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, set_faults, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.recovery import recover
from worker.verify import check


def test_a_refusal_still_in_the_webhook_backlog_is_paid_after_a_loss_with_heard(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: exchange ``accept``, worker ``unknown``, ledger context ``client_oid``. While the exchange stands
    distrusted, a 250 USDT top-up's send meets a 5xx (nothing moved) and is blocked; the on-call answers
    ``--refused``. ``funding.refused`` is written to the outbound stream, but the upstream's webhook endpoint is
    down (deliveries back off, then dead-letter: README "Webhooks"), so the upstream has not received it. Redis
    loses everything. The on-call, following the runbook, runs ``provisioner recover --heard`` with everything the
    upstream received (its archive is complete: it simply never got the refusal); the upstream re-publishes.

    What happens: the heard file is "given", so ``ask_if_unfound`` is off; the line is looked for, found unpaid
    (true) and sent: 250 USDT paid, ``funding.completed`` for a line an operator refused.

    Why it is wrong: a refused line is never paid. What the upstream heard is a subset of the verdicts we gave
    whenever deliveries lag (the webhook backlog and its dead letters live in the same Redis that was lost), and
    a refusal is exactly the kind of verdict that leaves nothing on the exchange. "Given a heard file" therefore
    cannot mean "every refusal is known": an unpaid line from before the loss that the file does not mention must
    still need an operator (or at least one asked before the oldest undelivered event could have been written)."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "client_oid"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "backlog-refusal")
        ev = events_for("backlog-refusal", funding=())
        late = topup("backlog-refusal", "topup", 5, [("USDT", "250")])
        step = "fund:backlog-refusal-topup#0"
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
        assert [e["key"] for e in heard if e["type"] == "funding.refused"] == ["backlog-refusal-topup#0"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            received = [e for e in heard if e["type"] != "funding.refused"]  # still in the webhook backlog
            given = outcomes_from_events(received)
            recover(app, reason="test: Redis restarted without persistence", heard=given)
            published = [ev["created"], ev["kyc"], late]
            ref = redeliver(app, published)
            settle_with(rig, app, ref)
            violations = check(
                [parse_event(e, None) for e in published],
                rig.state(),
                app.store.load,
                app.store.journal,
                naming=app.policy.naming,
                keyring=app.keyring,
                probe=rig.key_works,
                funding_caps=app.settings.funding_cap_per_customer,
                outbound=heard + outbound(app),  # what we told, delivered or not
            )
            truth = "the upstream was told the truth"
            told = [f"{v.invariant}: {v.detail}" for v in violations if v.invariant == truth]
            paid = paid_to(rig, uid)
            assert paid == [] and told == [], f"a refused line was paid ({len(paid)} transfer(s)): {told}"
        finally:
            app.close()
    finally:
        rig.close()
