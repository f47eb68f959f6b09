"""Two copies of one event taken at once by two worker groups whose settings disagree (a rollout that adds a
currency): the group that refuses it records the refusal as final and tells ``event.refused`` although the other
group stored it in the meantime and pays it.

Scenario: a rollout adds KCS to ``PROVISIONER_CURRENCIES``. Group A (restarted) has it, group B (not yet) does not.
Customer C, keyed, asks for a KCS top-up E. E reaches the workers twice at the same moment — the routine
at-least-once case: the publisher retried a request whose answer it lost (the README: "retry 5xx and lost answers
with the same events, which is safe"), or the stale scan re-sent E's hand-off while the first message was in a
worker's hands. B's copy is checked first: "unknown currency 'KCS'". Between that check and B's ``report``, A's copy
is stored (ingest) and A's run pays E's line.

What happens: ``Intake.accept`` on B runs ``check`` (the event is not stored yet, so 46-round's ``holds_event``
look-up does not save it), then ``report``: ``record_refusal(final=True)`` writes the customer's refusals hash and
the outbound stream carries ``event.refused`` for E — with no test that E is stored by then. The upstream now holds
``funding.completed`` for ``E#0`` and ``event.refused`` for E, the latter documented as final for that id ("send a
new event"). Every later copy of E is answered refused too (the ingest script finds the refusal).

Why it is wrong: the refusal is not true — E was stored and paid — yet it is told as the final word on E; an
upstream that follows the contract books the top-up refused and may send it again under a new id, which is paid
(twice the money for one top-up, silently, within the cap). An event refused by one group and paid by the other.

Suggested fix: record a final refusal in one script with the events hash: ``HEXISTS`` of the event id first; if it
is stored, record nothing final and answer it as intake would (duplicate or conflict), so ``accept`` returns that
instead of the refusal. (Equivalently: move the policy checks of the moment — currencies, age, photo size — after
the ingest script's "already stored" test, for new events only.)

Likelihood: low — it needs two copies of one event in flight within milliseconds on two groups whose validation
differs (a rollout of currencies, the photo limit, or a clock skew near the age bound); the effect, "refused"
told final for money that moved, is what the 46th round's fix set out to rule out.
"""

from __future__ import annotations

from typing import Any

from tests.adversarial.helpers import outbound_of, paid_to, topup
from tests.adversarial49.helpers import other_group
from tests.core.harness import Rig, events_for
from worker.intake import Accepted, Refused

OLD_CURRENCIES = "USDT,USDC,BTC,ETH"  # the group not restarted yet: no KCS


def test_a_copy_refused_by_the_other_group_is_told_final_while_it_pays(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)  # group A: default currencies, KCS among them
    old = other_group(
        rig,
        redis_url,
        key_prefix,
        PROVISIONER_CURRENCIES=OLD_CURRENCIES,
        PROVISIONER_FUNDING_CAP_PER_CUSTOMER="USDT=1000,BTC=1,ETH=5,USDC=1000",
        PROVISIONER_FUNDING_CAP_PER_DAY="USDT=100000,BTC=10,ETH=50,USDC=1000",
    )
    try:
        ev = events_for("rolling-ccy")
        (ref, _) = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        top = topup("rolling-ccy", "kcs", 5, [("KCS", "50")])

        check = old.intake.check

        def checked_while_the_other_copy_lands(raw: Any) -> Any:
            verdict = check(raw)
            stored = rig.app.intake.accept(dict(top))  # group A's copy, in that very moment
            assert isinstance(stored, Accepted), stored
            rig.settle(ref)
            return verdict

        old.intake.check = checked_while_the_other_copy_lands  # type: ignore[method-assign]
        outcome = old.intake.accept(dict(top))  # group B's copy
        kcs_paid = [t for t in paid_to(rig, uid) if t["currency"] == "KCS"]
        refusals = [e for e in outbound_of(rig, "event.refused") if e["event_id"] == top["id"]]
        assert len(kcs_paid) == 1, "group A stored and paid the top-up"
        assert not isinstance(outcome, Refused) and not refusals, (
            f"told event.refused (final) for a top-up that was stored and paid: {[r['reason'] for r in refusals]}"
        )
    finally:
        old.close()
        rig.close()
