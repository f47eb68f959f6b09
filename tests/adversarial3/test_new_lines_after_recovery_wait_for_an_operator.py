"""``CustomerRecord.recovered_at_ms`` is never cleared: once a customer was audited after a loss, *every* funding
line it is ever asked for is treated as one "our record of it may have been lost": ``_funding`` issues
``LookForTransfer`` for it and sends it evidence-first (``handlers.planner._funding``; 157a275 added the
look-for). Under a ledger that names no order, any transfer of the same amount to anyone since five minutes before
the line's event makes the line undecidable, so a top-up asked for long after the recovery — which no send before
the loss can have paid — is blocked for an operator, where a customer never recovered would simply be paid."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from decimal import Decimal

from sandbox import SandboxConfig
from tests.adversarial.helpers import paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.exchange.models import AccountType, Direction
from worker.recovery import declare_republished, recover


def test_a_top_up_asked_for_a_day_after_the_recovery_is_blocked_for_an_operator(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: exchange ``accept``, worker ``unknown``, ledger context ``none`` (the README's undecidable case
    — for a *lost* transfer). The customer is provisioned (no funding), Redis loses everything, ``provisioner
    recover``, the upstream re-publishes, the customer converges. A day later the broker's campaign pays another
    sub-account 100 USDT, and this customer asks for a 100 USDT top-up (its event occurs then).

    What happens: the top-up is looked for in the ledger from five minutes before its event; the other
    sub-account's 100 USDT entry carries no id, so the judgement is undecided and the line is blocked for an
    operator (``fund:…-late#0``, "may have been sent under any of these clientOids, our count of its attempts having
    been lost with our state", ``provisioning.failed`` upstream). Nothing is sent.

    Why it is wrong: nothing was lost about this line — its event occurred a day after the recovery, the
    worker's state since the recovery is whole (a new loss would halt it again), and ``_earliest_send`` already
    trusts ``occurred_at`` to say when the line could first have been sent. The worker must block only where the
    exchange's records cannot tell *and* something may have been sent; here nothing can have been, and the same
    top-up for a customer never recovered is sent at once. Every recovered customer becomes an operator's case for
    every later top-up of a common amount."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "none"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ev = events_for("late-topup", funding=())
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            assert not app.store.load(ref).blocked
            rig.clock.advance_ms(60_000)
            declare_republished(app)  # the on-call, once the upstream says it has re-published everything

            rig.clock.advance_ms(86_400_000)  # a day later
            other = app.exchange.sub_accounts.add(account_name="campaignother002")
            app.exchange.transfers.transfer(
                currency="USDT",
                amount=Decimal(100),
                direction=Direction.OUT,
                account_type=AccountType.MAIN,
                special_uid=other.uid,
                special_account_type=AccountType.TRADE,
                client_oid="campaign-late-1",
            )
            late = topup("late-topup", "late", 0, [("USDT", "100")])
            late["occurred_at"] = datetime.fromtimestamp(rig.clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            app.intake.accept(late)
            settle_with(rig, app, ref)

            record = app.store.load(ref)
            manual = {s: b.reason[:120] for s, b in record.blocked.items() if b.manual}
            assert not manual, f"a line asked for a day after the recovery waits for an operator: {manual}"
            assert [t["amount"] for t in paid_to(rig, uid)] == ["100"]
        finally:
            app.close()
    finally:
        rig.close()
