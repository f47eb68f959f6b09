"""0e286ee: after a loss no sub-account is created for a customer without one until the re-publication is declared
(``recovery_open``). That includes customers the upstream creates for the first time after the recovery: the
planner idles them ("waiting for the re-publication ... to be declared"), but ``customer show`` / ``GET
/customers/{id}`` derive the "awaits the re-publication" reason only from ``record.recovered_at_ms`` — None for a
record made after the loss — so the view shows a customer stuck before its sub-account with no reason at all."""

from __future__ import annotations

import pytest

from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, second_host, settle_with
from worker.customer_view import read_customer_view
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis


def test_a_customer_created_after_the_recovery_shows_why_it_waits(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: Redis loses its data; the on-call runs ``provisioner recover``; the upstream has not re-published
    yet (that may take hours: ``RepublicationUndeclared`` tickets only after two). Meanwhile a brand-new customer
    is created and approved (no funding line). Support looks it up with ``provisioner customer show``.

    What happens: the worker creates no sub-account (``recovery_open``), correctly, but the view says only stage
    ``creating``: no reason anywhere (``waits`` in ``customer_view`` requires ``record.recovered_at_ms``, which
    only records rebuilt by ``recover`` carry). With a funding line, its reason is the wrong one (AWAITING_LEDGER,
    "waits until the ledger lists every transfer"), and once the caps are re-seeded none. (At the declaration the
    customer is woken and provisioned — that part holds.)

    Why it is wrong: a wait must have a visible reason; the only signal is a deployment-wide ticket two hours
    later that speaks of "recovered customers' funding", not of new customers' sub-accounts.

    Suggested fix: pass ``recovery_open`` (lost_at set, not declared) to ``customer_view`` and say, for a
    customer without a sub-account, "waiting for the re-publication after the loss to be declared"; mention new
    customers in the RepublicationUndeclared alert text.

    Likelihood: high after any loss in a live deployment (new sign-ups continue); impact: support sees a stuck
    customer without a cause, the on-call is not paged for it.
    """
    rig = Rig(redis_url, key_prefix)
    try:
        old = events_for("before-loss")
        rig.settle(rig.publish(old["created"], old["kyc"])[0])
        lose_everything(rig)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis lost everything")
            ev = events_for("new-after-loss", funding=())  # approved without a funding line
            for name in ("created", "kyc"):
                assert app.intake.accept(ev[name]) is not None
            ref = app.policy.naming.customer_ref("new-after-loss")
            settle_with(rig, app, ref)
            view = read_customer_view(app.store, app.policy.naming, "new-after-loss")
            assert view is not None and view.sub_account_uid is None, "precondition: held before its sub-account"
            shown = repr(view)
            # what held: the declaration wakes it and it is provisioned
            declare_republished(app)
            settle_with(rig, app, ref)
            woken = read_customer_view(app.store, app.policy.naming, "new-after-loss")
            assert woken is not None and woken.sub_account_uid is not None, "not woken at the declaration"
            assert "re-publication" in shown, (
                f"customer show for a customer held by the open recovery gives no reason: {shown}"
            )
        finally:
            app.close()
    finally:
        rig.close()
