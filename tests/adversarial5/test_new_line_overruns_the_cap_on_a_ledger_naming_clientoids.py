"""c05fc24/c8a3458 answer adv4 break 3 (a live top-up paid on a cap that knows nothing of the lines paid before the
loss) by blocking a new line whose look-for finds a transfer of its amount that no line we hold explains. But the
judgement counts as a candidate only an entry that names *no* clientOid: on a ledger whose entries name the
clientOid (``ledger_context: client_oid``), the pre-loss line's entry names one that is not the new line's, so it
is "someone else's", the new line is NOT_COMMITTED, and it is paid past the per-customer cap — adv4's very
scenario, same amounts."""

from __future__ import annotations

import shutil
from decimal import Decimal

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound, paid_to, topup, total, violations_after
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import recover
from worker.store.outbound import rfc3339


def test_a_live_top_up_overruns_the_cap_on_a_ledger_naming_clientoids(redis_url: str, key_prefix: str) -> None:
    """Scenario: per-customer cap 1000 USDT; ledger entries name the orderId and the clientOid (repeats
    deduplicated). Top-up A (600 USDT) is paid. Redis loses everything; ``provisioner recover`` without
    ``--heard``. The upstream starts re-publishing (creation and approval; the record is audited). Ten minutes
    later, before the re-publication reaches A, the customer asks for top-up B (600 USDT, live). Then A is
    re-published.

    What happens: B is looked for from the sub-account's creation; A's 600 USDT entry names A's clientOid, which
    is not one of B's, so ``judge_by_ledger`` takes it for another line's (not a candidate): NOT_COMMITTED, and B
    is decided against ``funded() == 0`` and paid. A is then found: 1200 USDT to a customer capped at 1000.

    Why it is wrong: the caps hold after a loss. An entry naming one of *our* clientOids for another line of this
    customer is exactly "a line paid before the loss that the upstream has not re-published yet" — it must count
    (or block) as the orderId-only entry does; whether the cap holds must not depend on what the exchange writes
    in a ledger entry's context."""
    config = SandboxConfig.from_dict({"ledger_context": "client_oid"})
    rig = Rig(redis_url, key_prefix, config=config)
    try:
        ref, uid = onboard_with_a_key(rig, "named-oid")
        ev = events_for("named-oid", funding=())
        a = topup("named-oid", "topup-a", 5, [("USDT", "600")])
        rig.publish(a)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["600"]
        heard = outbound(rig.app)

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")  # no --heard
            ref = redeliver(app, [ev["created"], ev["kyc"]])  # the re-publication has begun
            settle_with(rig, app, ref)

            rig.clock.advance_ms(10 * 60_000)
            now = rfc3339(int(rig.clock() * 1000))
            b = {**topup("named-oid", "topup-b", 0, [("USDT", "600")]), "occurred_at": now}
            assert isinstance(app.intake.accept(b), Accepted)
            settle_with(rig, app, ref)
            redeliver(app, [a])  # the re-publication reaches A
            rig.clock.advance_ms(3_600_000)
            app.due.schedule(ref, int(rig.clock() * 1000))
            settle_with(rig, app, ref)

            published = [ev["created"], ev["kyc"], a, b]
            violations = violations_after(rig, app, published, heard)
            paid = total(paid_to(rig, uid))
            caps = [f"{v.invariant}: {v.detail}" for v in violations if v.invariant == "none above the caps"]
            assert paid <= Decimal(1000) and not caps, f"paid {paid} USDT to a customer capped at 1000: {caps}"
        finally:
            app.close()
    finally:
        rig.close()
