"""6b200b8 makes a refusal recorded from ``recover --heard`` redecidable when its heard reason starts with a cap
reason. ``worker.heard.outcomes_from_events`` keeps, of a line heard refused twice, the FIRST refusal it reads. A line
refused by a cap, retried, then refused by an operator (``settle-transfer --refused``: "nothing moved and the line
must not be sent") was heard as two ``funding.refused`` (ids ``A`` and ``A:r1``); after a loss the heard file
records the cap refusal, which a ``customer retry`` takes back: the line the operator refused is paid.

Scenario: ``dedupe``, daily cap 1000 USDT. Day 0: W paid 900; X's line A (600) refused by the daily cap (heard).
Day 1: ``customer retry``; its send is blocked for an operator (the exchange answers 5xx while distrusted); the
on-call refuses it (``settle-transfer --refused``, heard: "refused by an operator: ..."). Redis loses everything;
``recover --heard`` with both events received, ``--heard-complete``; X re-published; declared. The on-call runs
``customer retry`` for X (say for another line; ``customer retry`` takes back every redecidable refusal).

What happens: the record holds A as the heard *cap* refusal; ``redecidable`` lists it; the retry decides A again:
600 USDT is paid and the upstream is told ``funding.completed`` after the operator's ``funding.refused``.

Why it is wrong: an operator's refusal stands (``RefusalCause.OTHER``: "it stands"); before the loss a retry could
not take it back. The loss turned a final refusal into a redecidable one: money moves against an operator's word
and the upstream's last verdict flips.

Suggested fix: ``outcomes_from_events`` keeps the LAST refusal heard of a line (by ``sequence``/order, the upstream's
latest verdict), or a heard refusal is redecidable only when every refusal heard of the line is a cap refusal;
carry the heard event id (``A:r1``) to seed ``redecided`` too.

Introduced by 6b200b8: with a1ee17a's ``handlers/refusals.py`` this test passes (a heard refusal was never
redecidable).

How likely: needs a cap refusal retried and then refused by an operator (or by attempts running out, or
offboarding after a retry), then a loss with ``--heard``, then any ``customer retry`` of that customer. Rare.
"""

from __future__ import annotations

import contextlib

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, set_faults, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.provisioning.reconciler import StepsBlocked
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


def test_heard_operator_refusal_after_a_cap_refusal_is_retried(redis_url: str, key_prefix: str) -> None:
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "dedupe"}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000",
    )
    try:
        ref_w, _uid_w = onboard_with_a_key(rig, "ho-w")
        rig.publish(topup("ho-w", "t", 4, [("USDT", "900")]))
        rig.settle(ref_w)
        ref_x, uid_x = onboard_with_a_key(rig, "ho-x")
        line_a = topup("ho-x", "topup-a", 5, [("USDT", "600")])
        rig.publish(line_a)
        rig.settle(ref_x)
        key, step = "ho-x-topup-a#0", "fund:ho-x-topup-a#0"
        assert rig.record(ref_x).transfers[key].status.value == "refused"

        rig.clock.advance_ms(DAY_MS)
        rig.app.state.distrust("test: another customer's double payment, being dealt with")
        set_faults(rig, "transfer", **{"5xx": 1.0})
        with contextlib.suppress(StepsBlocked):
            rig.run(ref_x, retry_blocked=True)  # `provisioner customer retry`: A decided again, its send blocked
        set_faults(rig, "transfer", **{"5xx": 0.0})
        rig.settle(ref_x)
        assert [s for s, b in rig.record(ref_x).blocked.items() if b.manual] == [step]
        rig.app.state.trust()
        settle_transfer(rig.app, ref_x, step, verdict=TransferVerdict.REFUSED, who="oncall", note="KYC doubt")
        rig.settle(ref_x)
        entry = rig.record(ref_x).transfers[key]
        assert entry.status.value == "refused" and (entry.note or "").startswith("refused by an operator"), entry
        assert paid_to(rig, uid_x) == []
        received = [e for e in outbound(rig) if e["type"] in ("funding.completed", "funding.refused")]
        reasons = [e.get("reason", "")[:30] for e in received if e.get("key") == key]
        assert len(reasons) == 2 and reasons[1].startswith("refused by an operator"), reasons

        lose_everything(rig)
        app = second_host(rig, same_host=True)
        try:
            recover(
                app, reason="test: Redis lost everything", heard=outcomes_from_events(received), heard_complete=True
            )
            ev = events_for("ho-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line_a])
            settle_with(rig, app, ref_x)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            for _ in range(2):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            record = app.store.load(ref_x)
            assert record is not None and record.transfers[key].status.value == "refused", "the heard refusal stands"
            assert paid_to(rig, uid_x) == []
            rig.clock.advance_ms(DAY_MS)
            with contextlib.suppress(StepsBlocked):
                app.reconciler.run(ref_x, retry_blocked=True)  # `provisioner customer retry`
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            record = app.store.load(ref_x)
            held = record.transfers.get(key) if record else None
            paid = [t["amount"] for t in paid_to(rig, uid_x)]
            assert paid == [], f"the line an operator refused was paid {paid}; record: {held}"
        finally:
            app.close()
    finally:
        rig.close()
