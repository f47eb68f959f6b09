"""c05fc24 (adv4 break 4) looks a re-published line up even when its ``occurred_at`` is new, but with
``ask_if_undecided=False``: "where the ledger cannot tell it is sent and its send searched for a second payment
afterwards". On an exchange that executes a repeated clientOid again, with a ledger whose entries carry no ids,
the ledger can never tell — so the re-stamped line is paid a second time, and the recheck only reports it
afterwards. The same line re-published with its true ``occurred_at`` waits for an operator and is never re-paid."""

from __future__ import annotations

import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, paid_to, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.intake import Accepted
from worker.recovery import recover
from worker.store.outbound import rfc3339


def test_a_restamped_line_is_paid_twice_when_the_ledger_names_no_ids(redis_url: str, key_prefix: str) -> None:
    """Scenario: exchange ``accept`` (a repeated clientOid makes a new transfer; the worker is configured
    ``unknown``), ledger entries without ids (``ledger_context: none``). A 250 USDT top-up is paid. Redis loses
    everything; ``provisioner recover`` (no ``--heard``). Creation and approval are re-published and worked; ten
    minutes later the top-up is re-published — same event id, same line — stamped with its re-publication time.

    What happens: the line counts as asked for after the recovery, so its look-for is ``ask_if_undecided=False``:
    the ledger shows one anonymous 250 USDT entry (the original payment), UNDECIDED, so the line is sent under
    attempt 0's clientOid — executed again: two 250 USDT transfers for one line. The recheck later flags "cannot
    tell whether 250 USDT was paid twice" — after the money moved.

    Why it is wrong: never a double transfer, under duplicated events and after a loss. The re-stamp fix turns
    "cannot tell" into "send" exactly where sending is unsafe; with the true ``occurred_at`` the same line is
    held for an operator (a97a4cd) and paid once. A look-for that cannot tell must not send on an exchange that
    may execute a repeat (or must send under a clientOid the exchange deduplicates)."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "none"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ref, uid = onboard_with_a_key(rig, "anon-restamp")
        ev = events_for("anon-restamp", funding=())
        original = topup("anon-restamp", "topup", 5, [("USDT", "250")])
        rig.publish(original)
        rig.settle(ref)
        assert [t["amount"] for t in paid_to(rig, uid)] == ["250"]

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)

            rig.clock.advance_ms(10 * 60_000)
            restamped = {**original, "occurred_at": rfc3339(int(rig.clock() * 1000) + 60_000)}
            assert isinstance(app.intake.accept(restamped), Accepted)
            settle_with(rig, app, ref)
            for _ in range(2):
                rig.clock.advance_ms(3_600_000)
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)

            paid = paid_to(rig, uid)
            record = app.store.load(ref)
            assert record is not None
            flags = sorted(record.blocked)
            assert len(paid) == 1, f"line anon-restamp-topup#0 paid {len(paid)} times (flagged afterwards: {flags})"
        finally:
            app.close()
    finally:
        rig.close()
