"""After a rollback, a funding line the restored snapshot shows *pending* (its intent written under attempt 0) is
settled by re-sending that intent's clientOid (``resolve_transfer``: under ``dedupe``/``reject`` a re-send is
evidence). But between the snapshot and the loss the line may have gone on under its *next* clientOid: attempt 0
refused by the exchange, the operator's ``provisioner customer retry``, attempt 1 paid. The exchange holds nothing
under attempt 0 (a refused transfer is not recorded), so the re-send pays the line a second time."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, restore_state, snapshot_state, topup
from tests.core.harness import Crash, Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.provisioning.operator import settle_transfer
from worker.recovery import declare_republished, recover

_TRANSFER = "/api/v1/broker/nd/transfer"


def test_a_rollback_re_sends_the_restored_attempt_of_a_line_paid_under_the_next_one(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: default exchange, ``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe`` (what it does; ``reject`` alike), the
    Special Account holds 300 USDT. Customer X asks for 400 USDT: reserved, intent written under attempt 0, and
    the worker dies before sending. Redis is snapshotted here (X
    pending). The worker settles X: the re-send is refused (insufficient balance), the ledger shows nothing, the
    line is blocked for an operator (since adv23), who finds nothing under attempt 0 at KuCoin: sent again on that
    word, refused again, blocked. The broker tops the Special Account up; the on-call runs ``provisioner customer
    retry``: attempt 1 pays X's 400 and the upstream hears ``funding.completed``. Redis is then restored from the
    snapshot (detected: rolled back); ``provisioner recover`` (no ``--heard``: the file is not at hand); the
    upstream re-publishes and the on-call declares it.

    What happens: the restored record holds X's intent under attempt 0; once the caps are re-seeded it is settled
    by re-sending attempt 0's clientOid. The exchange holds no transfer under it (the refusal recorded none), so
    it pays: X's sub-account receives 400 USDT twice (800) for one 400 line (a recheck may flag it afterwards,
    the money is gone).

    Why it is wrong: exactly-once funding. The README says a recovered record "may be a restored snapshot — what
    it says ... may have changed since (a line paid after the snapshot): every line is looked for again" (the
    audit); a pending transfer intent restored from a snapshot is the same: it must be settled evidence-first —
    the ledger searched under each of the line's clientOids (``_attempts``) from its first send — before anything
    is re-sent, as ``Transfer(evidence_first=True)`` does for an unrecorded line. Fix: in a recovered epoch, turn a
    restored pending funding intent into a look-for under every attempt (or mark it ``evidence_first``) before the
    re-send. ``recover --heard --heard-complete`` avoids it (``_seed_heard`` drops the intent: checked), not the
    default ``recover``."""
    balances = {"MAIN": {"USDT": "300", "USDC": "100000", "BTC": "100", "ETH": "1000", "KCS": "100000"}}
    config = SandboxConfig.from_dict({"initial_balances": balances})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe")
    try:
        ref_x, uid_x = onboard_with_a_key(rig, "stale-att-x")
        line = topup("stale-att-x", "topup", 5, [("USDT", "400")])
        rig.publish(line)
        rig.transport.crash("POST", _TRANSFER, when="before")
        with pytest.raises(Crash):
            rig.run(ref_x)
        assert rig.record(ref_x).pending is not None  # intent under attempt 0, nothing sent

        snapshot = snapshot_state(rig)
        rig.settle(ref_x)  # the re-send is refused (insufficient balance), the ledger silent: an operator decides
        step = "fund:stale-att-x-topup#0"
        assert step in rig.record(ref_x).blocked and rig.record(ref_x).blocked[step].manual
        # the on-call finds nothing under attempt 0 at KuCoin: sent again under it on that word, refused again
        settle_transfer(rig.app, ref_x, step, committed=False, who="oncall", note="KuCoin: nothing under C0")
        rig.settle(ref_x)
        assert step in rig.record(ref_x).blocked and not rig.record(ref_x).blocked[step].manual
        with rig.exchange.lock:  # the broker tops the Special Account up
            broker = rig.exchange.state.broker.uid
            rig.exchange.state.credit(
                broker, "USDT", "MAIN", Decimal(10_000), now_ms=rig.exchange.now_ms(), deposit=False
            )
        rig.run(ref_x, retry_blocked=True)  # the on-call's `provisioner customer retry`: attempt 1
        rig.settle(ref_x)
        assert [t["amount"] for t in paid_to(rig, uid_x)] == ["400"]
        assert [e["key"] for e in outbound_of(rig, "funding.completed")] == ["stale-att-x-topup#0"]
        rig.app.state.check()  # the host's mirror holds the newer write count

        restore_state(rig, snapshot)  # restored from the older snapshot
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: restored from a snapshot")
            assert report.detected.startswith("rolled_back"), report
            ev = events_for("stale-att-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line])
            declare_republished(app, stamps_kept=True)
            for _ in range(3):
                app.due.schedule(ref_x, int(rig.clock() * 1000))
                settle_with(rig, app, ref_x)
                rig.clock.advance_ms(600_000)
            paid = [t["amount"] for t in paid_to(rig, uid_x)]
            record = app.store.load(ref_x)
            blocks = {} if record is None else {k: b.reason[:120] for k, b in record.blocked.items()}
            assert paid == ["400"], f"X's one 400 USDT line was paid {paid}; blocks: {blocks}"
        finally:
            app.close()
    finally:
        rig.close()
