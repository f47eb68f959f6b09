"""479dc78 closes a customer offboarded before its sub-account exists, telling each funding line refused and then
``customer.offboarded`` (no ``uid``). Such a close leaves nothing on the exchange, so after a loss of Redis nothing
says the customer is closed: when the upstream re-publishes its events in their original order (created, approved,
… offboarded last), the worker creates a sub-account, issues a key and delivers its credentials for a customer the
upstream offboarded long ago, then closes it a second time — under a new ``customer.offboarded`` id (the digest
covers the new ``uid``), so the receiver takes it as a second, different offboarding."""

from __future__ import annotations

import pytest

from tests.adversarial.helpers import outbound
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis


def test_a_customer_offboarded_before_its_sub_account_gets_one_after_a_loss(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: a customer is created, approved (a 250 USDT line) and offboarded before the worker created its
    sub-account (the three events arrive together; the offboarding, on the urgent queue, is handled first). The
    worker tells ``funding.refused`` for the line and ``customer.offboarded`` (no uid), and creates nothing at
    KuCoin. Later Redis loses its data; ``provisioner recover`` runs with ``--heard`` (the upstream kept its
    ``funding.*`` events, as docs/integration.md asks). The upstream re-publishes its events in their original
    order: ``customer.created``, ``customer.kyc_approved`` — the offboarding comes last, minutes later.

    What happens: the recovered deployment has no record of the customer and the exchange has no sub-account of
    it; the planner sees a created, approved customer and creates its sub-account (``sub_account.created``),
    issues a key and sends its credentials (``api_key.issued``). When the offboarding arrives, the key is revoked
    and the customer closed again: a second ``customer.offboarded``, now with the new sub-account's uid — a new
    digest, so a new id the receiver does not drop as a copy.

    Why it is wrong: the upstream, which offboarded the customer long ago, receives a new sub-account, live trading
    credentials and a second, different offboarding for them; KuCoin holds a sub-account (counted against the
    broker's sub-account limit, never deletable by the broker API) for a customer who never had one. The promise:
    the upstream told the truth, ``customer.offboarded`` honest — and effects only for what was asked.

    Suggested fix: after a recovery, do not create a sub-account for a customer with neither a record nor a
    sub-account on the exchange until the on-call has declared the re-publication complete
    (``republished_at_ms``), as funding already waits for it; or record closed customers where a loss cannot take
    them (``--heard`` could carry ``customer.offboarded`` too, and ``recover`` store a closed record for it).

    Likelihood: low (a loss of Redis, a customer offboarded before its sub-account was created, an in-order
    re-publication); impact: a sub-account and live credentials for a closed customer, and a duplicated
    offboarding upstream.
    """
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("early-off", funding=(("USDT", "250"),))
        ref = rig.publish(ev["created"], ev["kyc"], ev["offboard"])[0]
        rig.settle(ref)
        heard = rig.outbound()
        assert [e["type"] for e in heard] == ["funding.refused", "customer.offboarded"], heard
        assert not rig.state()["subAccounts"], "precondition: nothing was created at KuCoin"

        rig.clock.advance_ms(86_400_000)
        lose_everything(rig)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis lost everything", heard=outcomes_from_events(heard))
            for name in ("created", "kyc"):  # the re-publication, in the original order
                assert app.intake.accept(ev[name]) is not None
                settle_with(rig, app, ref)
                rig.clock.advance_ms(60_000)
            rig.clock.advance_ms(600_000)
            assert app.intake.accept(ev["offboard"]) is not None
            declare_republished(app)
            for _ in range(3):
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)
                rig.clock.advance_ms(600_000)
            told = [(e["type"], e["id"]) for e in outbound(app)]
            assert not rig.state()["subAccounts"] and not any(t == "api_key.issued" for t, _ in told), (
                f"after the loss a sub-account and a key were made for a customer offboarded before it had one: "
                f"{len(rig.state()['subAccounts'])} sub-account(s); told {told}; before the loss it was told "
                f"{[(e['type'], e['id']) for e in heard]}"
            )
        finally:
            app.close()
    finally:
        rig.close()
