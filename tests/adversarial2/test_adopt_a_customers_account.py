"""``provisioner recover --adopt`` checks only that the uid is a sub-account of the broker and that the adopting
customer has no other sub-account: a uid that is already one of *our* customers' (its name derived by our naming,
in the recovery index) is adopted too, so two customers share one sub-account — the adopter gets a trading key on
the other's money, and its offboarding sweeps that money back to the Special Account."""

from __future__ import annotations

from decimal import Decimal

from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import second_host
from worker.recovery import Adoption, RecoveryError, recover


def test_adopting_a_uid_that_is_another_customers_gives_two_customers_one_sub_account(
    redis_url: str, key_prefix: str
) -> None:
    """One sub-account per customer: recover --adopt hands customer Y's sub-account (derived name) to customer X."""
    rig = Rig(redis_url, key_prefix)
    try:
        y = events_for("customer-y")
        ref_y = rig.publish(y["created"], y["kyc"])[0]
        rig.settle(ref_y)
        uid_y = rig.record(ref_y).sub_account.uid
        assert rig.app.policy.naming.is_account_name(rig.record(ref_y).sub_account.account_name)

        cli = second_host(rig, same_host=True)
        try:
            try:  # a migration map with one wrong row: Y's uid typed for the legacy customer X
                recover(cli, reason="migration", adoptions=[Adoption("customer-x", uid_y)])
            except RecoveryError:
                return  # refused: what the guarantee asks for
        finally:
            cli.close()
        x = events_for("customer-x", funding=())
        ref_x = rig.publish(x["created"], x["kyc"], x["offboard"])[0]
        rig.settle(ref_x)
        rig.settle(ref_y)
        owners = {ref: rig.record(ref).sub_account.uid for ref in (ref_x, ref_y)}
        (sub,) = [s for s in rig.state()["subAccounts"] if s["uid"] == uid_y]
        left = sum((Decimal(v) for rows in sub["balances"].values() for v in rows.values()), Decimal(0))
        assert owners[ref_x] != owners[ref_y], (
            f"customers X and Y share sub-account {uid_y}; X's offboarding left Y {left} of its 250 USDT"
        )
    finally:
        rig.close()


def test_adopting_a_customers_own_sub_account_is_refused(redis_url: str, key_prefix: str) -> None:
    """A migration map row naming a customer's *own* sub-account (created by us, under its derived name) is not an
    adoption: adopting it would mark every line from before as the previous system's and refuse it, although we
    paid it. `recover` finds our own sub-accounts by their names without it: the row is refused, saying so."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("customer-own")
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        cli = second_host(rig, same_host=True)
        try:
            try:
                recover(cli, reason="migration", adoptions=[Adoption("customer-own", uid)])
            except RecoveryError as exc:
                assert "ours" in str(exc) and uid in str(exc)
            else:
                raise AssertionError("a customer's own sub-account was adopted")
        finally:
            cli.close()
    finally:
        rig.close()
