"""The search for a second payment (``recheck_transfer``) treats "the ledger cannot tell" as "no second payment":
``count_second_payments`` returns ``None`` (entries without ids, transfers it did not read, siblings in doubt) and
``if extra:`` reads ``None`` as 0. With a contradicted clientOid setting the line is paid twice and nothing is
flagged — on a ledger that names no order, and on a busy ledger where other customers' transfers of the same
amount exceed ``MAX_ORDER_LOOKUPS`` (a campaign funding everyone with the same 250 USDT)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Rig


def _campaign(rig: Rig, uid: str, count: int) -> None:
    """Other customers funded with the same amount, moments before (made directly on the simulator)."""
    with rig.exchange.lock:
        for i in range(count):
            rig.exchange.state.transfer(
                client_oid=f"campaign-{i}",
                currency="USDT",
                amount=Decimal("250"),
                direction="OUT",
                account_type="MAIN",
                special_uid=uid,
                special_account_type="TRADE",
                now_ms=rig.exchange.now_ms(),
                processing_ms=0,
            )


@pytest.mark.parametrize("ledger", ["none", "busy"])
def test_a_double_payment_the_ledger_cannot_attribute_is_never_flagged(
    redis_url: str, key_prefix: str, ledger: str
) -> None:
    """A double payment is flagged, never silent: a recheck that cannot tell counts as "no second payment"."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict(
            {"duplicate_client_oid": "accept", "ledger_context": "none" if ledger == "none" else "order_id"}
        ),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",  # wrong: the exchange executes a repeat again
    )
    try:
        ref, uid = onboard_with_a_key(rig, f"cannot-tell-{ledger}")
        if ledger == "busy":
            _, other = onboard_with_a_key(rig, f"campaign-{ledger}")
            _campaign(rig, other, 301)
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup(f"cannot-tell-{ledger}", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)

        paid = paid_to(rig, uid)
        flagged = [e["step"] for e in outbound_of(rig, "provisioning.failed") if e["customer_ref"] == ref]
        distrusted = rig.app.state.distrust_reason()
        assert len(paid) == 1 or flagged or distrusted, (
            f"paid {len(paid)} times, nothing flagged, exchange still trusted; journal: "
            f"{[e['action'] for e in rig.app.store.journal(ref)][-4:]}"
        )
    finally:
        rig.close()
