"""``_maybe_lost`` (handlers/planner.py) decides whether a funding line may have been sent before the loss from
the event's ``occurred_at`` alone — a field the upstream writes, and one a re-publication may re-stamp. A line is
identified by ``<event id>#<index>``: the same line re-published after the recovery with an ``occurred_at`` later
than the audit (+5 min) is taken for a line "asked for after the recovery", sent straight away, not looked for in
the ledger, not evidence-first — and paid a second time."""

from __future__ import annotations

import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import recover
from worker.store.outbound import rfc3339


def test_a_line_republished_with_a_later_occurred_at_is_paid_twice(redis_url: str, key_prefix: str) -> None:
    """Scenario: exchange ``accept`` (a repeated clientOid makes a new transfer; the worker is configured
    ``unknown``). A 250 USDT top-up (event ``…-topup``) is paid. Redis loses everything; ``provisioner recover``
    without ``--heard`` (by design: every line from before the loss is looked for, and if unpaid waits for an
    operator). The upstream re-publishes: the customer's
    creation and approval first (the record is audited), and ten minutes later the top-up — the same event id,
    the same line, but its publisher stamps ``occurred_at`` when it (re)publishes, as many outbox relays do.
    The stamp is within intake's 5-minute skew of our clock, so the event is accepted.

    What happens: ``_maybe_lost`` sees ``occurred_ms`` ≥ ``recovered_at_ms`` + 5 min, so the line "was never sent
    before the loss": no ``LookForTransfer``, ``since_ms=None`` (not evidence-first), ``twins=0``. The transfer is
    sent under attempt 0's clientOid — the one already paid — and the exchange executes it: two 250 USDT
    transfers for one line, no second-payment flag.

    Why it is wrong: exactly-once effects under duplicated events and after a loss. The line's identity is its key;
    whether it may have been sent before the loss cannot rest on a timestamp the sender controls — a line is
    surely new only when nothing of its key can have existed before the loss (e.g. its event was first *received*
    after the recovery by our own clock, or it is looked for anyway, which costs one ledger read)."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "client_oid"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "restamped")
        ev = events_for("restamped", funding=())
        original = topup("restamped", "topup", 5, [("USDT", "250")])
        rig.publish(original)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["250"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")  # no --heard: the safe default
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            record = app.store.load(ref)
            assert record is not None and record.recovered_at_ms is not None

            rig.clock.advance_ms(10 * 60_000)
            restamped = {**original, "occurred_at": rfc3339(int(rig.clock() * 1000) + 60_000)}
            assert isinstance(app.intake.accept(restamped), Accepted)
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)
            app.due.schedule(ref, int(rig.clock() * 1000))
            settle_with(rig, app, ref)

            paid = paid_to(rig, uid)
            record = app.store.load(ref)
            assert record is not None
            flagged = any(b.manual for b in record.blocked.values())
            assert len(paid) == 1 or flagged, (
                f"line restamped-topup#0 paid {len(paid)} times under "
                f"{sorted({t['clientOid'][:12] for t in paid})}, nothing flagged"
            )
        finally:
            app.close()
    finally:
        rig.close()
