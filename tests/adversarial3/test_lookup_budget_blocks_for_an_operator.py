"""Attributing ledger entries that name only orderIds reads Get Transfer History for each transfer of the same
amount (``money_steps._counterparties``). Since 4c7cc92 what is read is kept (``TransferFacts``) "so a long
judgement progresses run by run" — but a judgement that meets more than ``MAX_ORDER_LOOKUPS`` (300) unread
transfers does not go on in the next run: the entries beyond the budget are returned with no counterparty,
``judge_by_ledger`` calls that "the transfers behind these ledger entries could not be read" (UNDECIDED), and the
line is blocked for an operator's verdict at once, although every transfer can be read and the next run would have
found the rest in the cache."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, set_faults, topup
from tests.core.harness import Rig
from worker.exchange import RetryableError
from worker.exchange.models import AccountType, Direction


def test_a_campaign_of_more_than_300_same_amount_transfers_turns_a_lost_answer_into_an_operators_case(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: exchange ``accept``, worker ``unknown``, ledger context ``order_id`` (entries name only the
    orderId: each must be looked up to know whose it is). A campaign pays 301 transfers of 250 USDT to another of
    our sub-accounts; this customer's 250 USDT top-up is sent and its answer is lost.

    What happens: the ledger judgement looks up 300 orders (all kept in ``{p}:order:*``), leaves the last two
    unread, and blocks ``fund:…-topup#0`` for an operator ("outcome unknown (the transfers behind these ledger
    entries could not be read: order …)"), ``provisioning.failed`` sent upstream. Nothing makes it look again: the
    block is manual, so only ``settle-transfer`` moves it, though one more run would read the two remaining orders
    and find the one transfer to this sub-account that no other transfer of ours explains (committed).

    Why it is wrong: the exchange's records decide this transfer; the worker must block for an operator only where
    they cannot tell (README, "What the exchange leaves undecidable"). A read budget per run should carry the
    judgement into the next run (the facts are cached for that), not hand it to a human."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "order_id"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "campaign-budget")
        other = rig.app.exchange.sub_accounts.add(account_name="campaignother001")
        for i in range(301):  # the campaign: the same amount to another sub-account
            rig.app.exchange.transfers.transfer(
                currency="USDT",
                amount=Decimal(250),
                direction=Direction.OUT,
                account_type=AccountType.MAIN,
                special_uid=other.uid,
                special_account_type=AccountType.TRADE,
                client_oid=f"campaign-{i}",
            )
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("campaign-budget", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        assert len(paid_to(rig, uid)) == 1, "the top-up was paid; its answer was lost"

        for _ in range(20):  # the actor retries a run that failed for now
            wake = rig.app.due.next_due_ms(ref)
            if wake is None:
                break
            rig.clock.advance_ms(max(0, wake - int(rig.clock() * 1000)))
            with contextlib.suppress(RetryableError):
                rig.run(ref)
            record = rig.record(ref)
            if record.pending is None and not record.blocked and "campaign-budget-topup#0" in record.transfers:
                break
        record = rig.record(ref)
        manual = {s: b.reason for s, b in record.blocked.items() if b.manual}
        assert not manual, f"blocked for an operator although the exchange's records decide it: {manual}"
        assert record.transfers["campaign-budget-topup#0"].status.value == "committed"
    finally:
        rig.close()
