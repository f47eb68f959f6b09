"""A sweep whose answer was lost, on an exchange whose ledger names no order (``ledger_context`` none), is recorded
``UNCONFIRMED`` (``money_steps._undecided``: "harmless for money, the next round reads the balances again"). The
next round reads nothing left and closes the customer. ``lifecycle_steps.close_customer`` sums only ``COMMITTED``
sweeps into ``customer.offboarded``'s ``swept``; the unconfirmed one goes to the journal only
(``unconfirmed_sweeps``), never to the upstream."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of
from tests.core.harness import Crash, Rig, events_for

pytestmark = pytest.mark.redis

TRANSFER = "/api/v1/broker/nd/transfer"


@pytest.mark.parametrize(("mode", "behaviour"), [("reject", "reject"), ("accept", "unknown"), ("accept", "accept")])
def test_a_lost_sweep_under_a_ledger_naming_no_order_is_told_swept_nothing(
    redis_url: str, key_prefix: str, mode: str, behaviour: str
) -> None:
    """
    Scenario: a correctly configured deployment (``PROVISIONER_CLIENT_OID_BEHAVIOUR`` = the exchange's ``reject``
    or ``accept``, or the default ``unknown``; ledger lag 0, within its setting) on an exchange whose Special Account
    ledger names no order (``ledger_context`` none — README "What the exchange leaves undecidable" names it). A
    customer funded 250 USDT is offboarded: key revoked, balances read (TRADE 250 USDT), the sweep of 250 USDT
    sent — and the worker dies right after KuCoin executed it (commit, then a lost answer).

    What happens: the intent is settled from the ledger (``reject``: the re-send is refused "clientOid duplicated",
    then the ledger; ``accept``/``unknown``: the ledger straight away). The one entry of 250 carries no id, so the
    judgement is undecided and the sweep is recorded ``UNCONFIRMED``; the next round reads empty balances and
    closes the customer. ``customer.offboarded`` says ``swept: {}`` — while the exchange shows 250 USDT moved back
    to the Special Account under our clientOid, SUCCESS. Nothing in the event (nor anything else the upstream
    receives) says a sweep is unconfirmed; only our journal's ``unconfirmed_sweeps`` does.

    Why it is wrong: the promise is "the upstream told the truth: customer.offboarded's ``swept`` amounts equal what
    actually moved back". docs/integration.md documents ``swept`` as "amount by currency", with no unconfirmed
    part. The upstream books the customer's closing balance on it: here it believes 250 USDT of the customer's money
    were never recovered (or, settling with the customer, pays out what the broker already took back).

    Suggested fix: tell the upstream what the worker cannot confirm instead of dropping it — e.g. an
    ``unconfirmed`` field (amount by currency, with the clientOids) on ``customer.offboarded``, documented in
    docs/integration.md; or, better, since the keys are revoked before any sweep, settle an undecided sweep by
    the balances (the amount still there → not moved; gone → moved, the only outflow a revoked sub-account has
    being our sweep) and count it in ``swept``; failing both, hold the close for an operator's verdict on the
    sweep (``settle-transfer`` for ``sweep:N``) as a funding line is held.

    Likelihood: medium on an exchange whose ledger names no order (every lost sweep answer — a time-out, a 5xx, a
    worker restart mid-sweep — ends this way under ``accept``/``unknown``/``reject``); impact: the upstream's
    offboarding record is wrong by the whole balance, silently.
    """
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"ledger_context": "none", "duplicate_client_oid": mode}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR=behaviour,
    )
    try:
        ev = events_for(f"lost-sweep-{mode}-{behaviour}")
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        record = rig.record(ref)
        assert record.sub_account is not None
        uid = record.sub_account.uid

        rig.transport.crash("POST", TRANSFER, when="after", nth=2)  # #1 funded the line, #2 is the sweep
        rig.publish(ev["offboard"])
        crashes: list[Crash] = []
        rig.settle(ref, on_crash=crashes.append)
        assert len(crashes) == 1, "precondition: the sweep's answer was lost after KuCoin executed it"
        assert rig.record(ref).closed_at_ms is not None, "precondition: the customer was closed"

        moved_back = [
            t
            for t in rig.state()["transfers"]
            if t["direction"] == "IN" and t["specialUid"] == uid and t["status"] != "FAILURE"
        ]
        actually: dict[str, Decimal] = {}
        for t in moved_back:
            actually[t["currency"]] = actually.get(t["currency"], Decimal(0)) + Decimal(t["amount"])
        assert actually == {"USDT": Decimal(250)}, f"precondition: the sweep moved 250 USDT back: {moved_back}"

        (told,) = outbound_of(rig, "customer.offboarded")
        swept = {c: Decimal(a) for c, a in told["swept"].items()}
        maybe = {c: Decimal(a) for c, a in told.get("unconfirmed", {}).items()}
        # the fix: what the exchange did not confirm is told as such (``unconfirmed``), never left out
        told_in_all = {c: swept.get(c, Decimal(0)) + maybe.get(c, Decimal(0)) for c in {*swept, *maybe}}
        assert all(swept.get(c, Decimal(0)) <= a for c, a in actually.items()), (swept, actually)
        assert told_in_all == actually, (
            f"customer.offboarded says swept {told['swept']} but the exchange moved back {actually} "
            f"(transfers IN: {[(t['amount'], t['status'], t['clientOid']) for t in moved_back]}); "
            f"our record: { {k: t.status.value for k, t in rig.record(ref).transfers.items()} }"
        )
    finally:
        rig.close()


def test_a_sweep_processing_past_the_hour_is_told_swept_nothing(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: the default settings (``unknown``), the default ledger (names orders, no lag), no lost answer at all —
    on an exchange whose transfers come to stay PROCESSING for two hours (debited at once, as the simulator and
    KuCoin's "PROCESSING" status allow). The funding line settled before that; then the customer is offboarded and
    its 250 USDT sweep is accepted with an orderId.

    What happens: ``confirm_transfer`` reads PROCESSING until ``PROCESSING_LIMIT_MS`` (an hour), then ``_stuck``
    records the sweep ``UNCONFIRMED`` and starts the next round; the balances read empty (debited at once), the
    customer is closed with ``swept: {}``. An hour later the exchange shows the sweep SUCCESS: 250 USDT moved back,
    under the orderId we hold.

    Why it is wrong: as above — ``swept`` must equal what moved back. Here the worker even holds the orderId, so
    reading it once more before closing (or after: the record is closed, but the order is known) would tell the
    truth; instead the upstream is told nothing came back, and never hears otherwise.

    Suggested fix: do not close on an UNCONFIRMED sweep whose order is known: keep reading its status (it is an
    ACCEPTED transfer, as a funding line's stays in doubt), or close and tell the upstream the unconfirmed amount;
    count it in ``swept`` once SUCCESS shows.

    Likelihood: low (a transfer PROCESSING for over an hour); impact: the upstream's offboarding record is wrong by
    the balance, with no later correction.
    """
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("stuck-sweep")
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        record = rig.record(ref)
        assert record.sub_account is not None
        uid = record.sub_account.uid
        assert [t.status.value for t in record.transfers.values()] == ["committed"], "precondition: funded"
        rig.exchange.update_config({"transfer_processing_ms": 2 * 3_600_000})  # from now on, transfers are slow
        rig.publish(ev["offboard"])
        rig.settle(ref, horizon_ms=4 * 3_600_000)
        assert rig.record(ref).closed_at_ms is not None, "precondition: the customer was closed"

        rig.clock.advance_ms(2 * 3_600_000)
        moved_back = [
            t
            for t in rig.state()["transfers"]
            if t["direction"] == "IN" and t["specialUid"] == uid and t["status"] == "SUCCESS"
        ]
        assert sum((Decimal(t["amount"]) for t in moved_back), Decimal(0)) == 250, (
            f"precondition: the sweep moved 250 USDT back: {moved_back}"
        )
        (told,) = outbound_of(rig, "customer.offboarded")
        ours = {k: t.status.value for k, t in rig.record(ref).transfers.items()}
        assert told["swept"] == {"USDT": "250"} or told.get("unconfirmed") == {"USDT": "250"}, (
            f"customer.offboarded says swept {told['swept']} while 250 USDT moved back (order "
            f"{moved_back[0]['orderId']}); our record: {ours}"
        )
    finally:
        rig.close()
