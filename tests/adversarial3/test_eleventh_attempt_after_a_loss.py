"""After a loss the worker looks for a funding line under "every attempt's clientOid" — but only attempts 0–9
(``handlers.planner.MAX_ATTEMPTS``, used by ``_look_for``, ``money_steps._attempts`` and the operator's
``candidates``), while nothing bounds a line's attempts before the loss: each ``provisioner customer retry`` of a
FAILED transfer, each spent clientOid (``_burn``) and each operator ``--not-committed`` on a duplicate adds one
(``retry_counts``). A line paid under attempt 10 is invisible to the search, and the line is paid again."""

from __future__ import annotations

import json
import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import paid_to
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import recover


def test_a_line_paid_under_its_eleventh_clientoid_is_paid_again_after_a_loss(redis_url: str, key_prefix: str) -> None:
    """Scenario: exchange ``accept``, worker ``unknown``, ledger context ``client_oid`` (the ledger names the
    clientOid of every transfer: the most the exchange can tell). The approval's 250 USDT line is accepted and
    then FAILS ten times (the exchange's documented FAILURE status); the on-call retries it each time (``provisioner
    customer retry``), and the eleventh clientOid (attempt 10) pays it. Redis then loses everything;
    ``provisioner recover``; the upstream re-publishes.

    What happens: ``LookForTransfer`` searches attempts 0–9; the one ledger entry names attempt 10's clientOid,
    which ``judge_by_ledger`` takes for "another clientOid: not ours" — not found (``transfer.not_found``). The
    evidence-first send under attempt 0's clientOid finds nothing either and is executed: the sub-account holds two
    successful 250 USDT transfers for one line, nothing is flagged (no recheck, and a recheck would search the same
    ten clientOids), and the upstream hears ``funding.completed`` twice (once before the loss, once after).

    Why it is wrong: never a double transfer, under any clientOid behaviour, after a loss. The exchange's ledger
    here names the clientOid that paid; the worker searched for too few. Either the attempts must be bounded (a
    line beyond the bound blocks for an operator) or the search must cover every attempt the line can have had.

    Now: attempts are bounded (``MAX_ATTEMPTS``): the retry that would send an eleventh clientOid refuses the line
    (``funding.refused``, "sent 10 times"). After the loss the line shows unpaid on the exchange; without the
    outcomes the upstream heard it waits for an operator, with them it is refused again; never paid."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "client_oid"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ev = events_for("eleventh-attempt")
        line = "eleventh-attempt-kyc_approved#0"
        rig.exchange.update_config({"transfer_failure_share": 1.0})
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        for _ in range(9):  # attempts 0..9 FAIL; the on-call retries each
            assert f"fund:{line}" in rig.record(ref).blocked
            rig.run(ref, retry_blocked=True)
            rig.settle(ref)
        rig.exchange.update_config({"transfer_failure_share": 0.0})
        rig.run(ref, retry_blocked=True)  # the tenth retry: an eleventh clientOid would be beyond every search
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        entry = rig.record(ref).transfers[line]
        assert entry.status.value == "refused" and "sent 10 times" in (entry.note or ""), entry
        assert paid_to(rig, uid) == []
        heard = [json.loads(f["event"]) for _, f in rig.app.redis.xrange(rig.app.keys.outbound)]
        assert [e["key"] for e in heard if e["type"] == "funding.refused"] == [line]

        for given in (None, heard):  # without what the upstream heard: an operator decides; with it: refused
            lose_everything(rig)
            shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
            app = second_host(rig, same_host=True)
            try:
                outcomes = None if given is None else outcomes_from_events(given)
                recover(app, reason="test: Redis restarted without persistence", heard=outcomes)
                ref = redeliver(app, [ev["created"], ev["kyc"]])
                settle_with(rig, app, ref)
                paid = paid_to(rig, uid)
                assert paid == [], f"the line is paid {len(paid)} times: {[t['clientOid'][:10] for t in paid]}"
                record = app.store.load(ref)
                assert record is not None
                if given is None:
                    assert record.blocked[f"fund:{line}"].manual
                else:
                    assert record.transfers[line].status.value == "refused" and not record.blocked
            finally:
                app.close()
    finally:
        rig.close()
