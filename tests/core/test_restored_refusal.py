"""After a rollback, a funding line the restored snapshot shows refused by a cap a retry takes back is looked for
in the ledger before the caps decide anything (it may have been retried and paid since: tests/adversarial10). Found
nothing, the refusal stands as it was: no operator is asked, the upstream hears nothing new of it."""

from __future__ import annotations

from decimal import Decimal

from tests.adversarial.helpers import onboard_with_a_key, outbound, outbound_of, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover


def test_a_restored_cap_refusal_found_unpaid_stands_without_a_new_verdict(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY="USDT=1000")
    try:
        ref_w, _ = onboard_with_a_key(rig, "rs-ref-w")
        rig.publish(topup("rs-ref-w", "t", 4, [("USDT", "900")]))
        rig.settle(ref_w)
        ref_x, uid_x = onboard_with_a_key(rig, "rs-ref-x")
        line = topup("rs-ref-x", "topup", 5, [("USDT", "600")])
        rig.publish(line)
        rig.settle(ref_x)
        assert [e["key"] for e in outbound_of(rig, "funding.refused")] == ["rs-ref-x-topup#0"]

        told_before = [e["id"] for e in outbound(rig.app) if e["type"].startswith("funding.")]
        r = rig.app.redis
        snapshot = {k: r.dump(k) for k in r.scan_iter(f"{rig.settings.key_prefix}:*", count=1000)}
        rig.app.state.check()
        for k in r.scan_iter(f"{rig.settings.key_prefix}:*", count=1000):  # restored from that snapshot
            r.delete(k)
        for k, value in snapshot.items():
            r.restore(k, 0, value, replace=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: restored from a snapshot", force=True)
            ev = events_for("rs-ref-x", funding=())
            redeliver(app, [ev["created"], ev["kyc"], line])
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            settle_with(rig, app, ref_x)
            record = app.store.load(ref_x)
            assert record is not None
            assert "rs-ref-x-topup#0" in record.looked_for  # looked for in the ledger under every clientOid
            assert record.transfers["rs-ref-x-topup#0"].status.value == "refused"  # the refusal stands
            assert record.blocked == {}  # no operator asked
            told = [e["id"] for e in outbound(app) if e["type"].startswith("funding.")]
            assert told == told_before  # nothing new told
            assert sum((Decimal(t["amount"]) for t in paid_to(rig, uid_x)), Decimal(0)) == 0
        finally:
            app.close()
    finally:
        rig.close()
