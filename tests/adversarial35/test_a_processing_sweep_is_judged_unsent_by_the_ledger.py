"""A lost sweep is judged from the Special Account's ledger under ``accept``/``unknown`` (``money_steps
.resolve_transfer`` → ``_judge``, direction ``in``). On an exchange that credits a transfer's target only when the
transfer completes (``transfer_credit`` on_completion — README: "an exchange may credit the sub-account only when
the transfer completes"), the sub-account is debited at once but the Special Account's credit, and with it its
ledger entry, comes only when the sweep leaves PROCESSING. For a funding transfer (OUT) the Special Account is the
debited side: its entry is there at once. For a sweep (IN) it is the credited side: the ledger's silence while the
sweep is PROCESSING is taken for "not committed"."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of
from tests.core.harness import Crash, Rig, events_for

pytestmark = pytest.mark.redis

TRANSFER = "/api/v1/broker/nd/transfer"
PROCESSING_MS = 10 * 60_000


@pytest.mark.parametrize("behaviour", ["unknown", "accept"])
def test_a_lost_sweep_still_processing_is_judged_not_committed_and_told_swept_nothing(
    redis_url: str, key_prefix: str, behaviour: str
) -> None:
    """
    Scenario: a correctly configured deployment — the exchange executes a repeated clientOid again (``accept``),
    ``PROVISIONER_CLIENT_OID_BEHAVIOUR`` ``accept`` or the default ``unknown``; its ledger names orders and lists an
    entry at once (lag 0 ≤ the 30 s setting) — on an exchange whose transfers stay PROCESSING for 10 minutes and
    credit their target on completion (the source is debited at once). A customer funded 250 USDT (the funding
    settles normally) is offboarded: key revoked, balances read (TRADE 250), the sweep of 250 USDT sent, and the
    worker dies right after KuCoin accepted it (commit, then a lost answer).

    What happens: a settle delay later (67 s) ``resolve_transfer`` asks the Special Account's ledger for an ``in``
    entry of 250: there is none yet — the sweep is PROCESSING, the Special Account not credited — so
    ``judge_by_ledger`` says NOT_COMMITTED ("no ledger entry since the first send is ours"), journalled
    ``not_committed``. The balances are read again: the sub-account was debited at once, so nothing is left; the
    customer is closed with ``customer.offboarded`` ``swept: {}``, and our record holds no trace of the sweep (not
    even ``unconfirmed``). Ten minutes later the sweep completes: 250 USDT moved back under our clientOid, SUCCESS.

    Why it is wrong: "the upstream told the truth: customer.offboarded's ``swept`` amounts equal what actually moved
    back" — it hears nothing came back. Our own journal records a transfer that moved money as not committed, so
    ``provisioner verify`` and an operator reading ``customer show`` are misled too. "Not committed relies on the
    ledger being complete for the window" (handlers/settlement.py): it is, for the entries the exchange has written;
    an IN transfer simply has none on the Special Account's side until it completes. (Had a deposit arrived
    meanwhile, the next round would re-send ``sweep:N`` under the very same clientOid.)

    Suggested fix: for a sweep, never take the Special Account ledger's silence as "not committed" while the send
    may still be PROCESSING (at most ``PROCESSING_LIMIT_MS``, as for an accepted transfer): wait, or record it
    ``UNCONFIRMED`` and start the next round; or judge it on the sub-account's side (revoked, its balance only falls
    by our sweep: 250 gone → moved). Count whatever is then found in ``swept`` (see also
    ``test_an_unconfirmed_sweep_is_left_out_of_swept``).

    Likelihood: low-medium (an exchange crediting on completion with a PROCESSING phase longer than the settle
    delay, and a lost sweep answer); impact: the upstream's offboarding record wrong by the whole balance, and our
    journal says the money never moved.
    """
    config = SandboxConfig.from_dict(
        {"transfer_credit": "on_completion", "transfer_processing_ms": PROCESSING_MS, "duplicate_client_oid": "accept"}
    )
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR=behaviour)
    try:
        ev = events_for(f"processing-sweep-{behaviour}")
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        record = rig.record(ref)
        assert record.sub_account is not None
        uid = record.sub_account.uid
        assert [t.status.value for t in record.transfers.values()] == ["committed"], "precondition: funded"

        rig.transport.crash("POST", TRANSFER, when="after", nth=2)  # #1 funded the line, #2 is the sweep
        rig.publish(ev["offboard"])
        crashes: list[Crash] = []
        rig.settle(ref, on_crash=crashes.append)
        assert len(crashes) == 1, "precondition: the sweep's answer was lost after KuCoin accepted it"
        assert rig.record(ref).closed_at_ms is not None, "precondition: the customer was closed"

        rig.clock.advance_ms(PROCESSING_MS)  # the sweep completes
        moved_back = [
            t
            for t in rig.state()["transfers"]
            if t["direction"] == "IN" and t["specialUid"] == uid and t["status"] == "SUCCESS"
        ]
        assert sum((Decimal(t["amount"]) for t in moved_back), Decimal(0)) == 250, (
            f"precondition: the sweep moved 250 USDT back: {moved_back}"
        )

        (told,) = outbound_of(rig, "customer.offboarded")
        journal = [e for e in rig.app.store.journal(ref) if e["action"] in ("not_committed", "transfer.committed")]
        assert told["swept"] == {"USDT": "250"} or told.get("unconfirmed") == {"USDT": "250"}, (
            f"customer.offboarded says swept {told['swept']} while 250 USDT moved back (order "
            f"{moved_back[0]['orderId']}, clientOid {moved_back[0]['clientOid']}); our journal: "
            f"{[(e['action'], e.get('key') or e.get('token'), e.get('evidence')) for e in journal]}"
        )
    finally:
        rig.close()
