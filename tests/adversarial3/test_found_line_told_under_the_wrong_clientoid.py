"""After a loss, ``LookForTransfer`` searches the ledger under every attempt's clientOid, and the ledger names the
one that paid — but ``money_steps.look_for_transfer`` builds the intent with ``client_oids[0]`` (attempt 0) as its
token, and ``_found`` / ``_accepted`` / ``_commit`` record and report *that* clientOid: the line is recorded and told
``funding.completed`` with the orderId of attempt 1's transfer and attempt 0's clientOid — a clientOid the exchange
holds a FAILED transfer under. (``transfer``'s evidence-first path does the same with the current attempt's.)"""

from __future__ import annotations

import shutil

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import recover


def test_a_line_found_paid_under_a_later_attempt_is_told_completed_under_a_failed_clientoid(
    redis_url: str, key_prefix: str
) -> None:
    """Scenario: exchange ``accept``, worker ``unknown``, ledger context ``client_oid``. The approval's 250 USDT
    line is accepted then FAILS under attempt 0; the on-call retries; attempt 1 pays it. Redis loses everything;
    ``provisioner recover``; the upstream re-publishes.

    What happens: the ledger entry names attempt 1's clientOid and its orderId; the line is committed (no second
    payment — good) but the record's transfer, the journal's ``transfer.committed`` and the upstream's
    ``funding.completed`` carry ``client_oid`` = attempt 0's, paired with attempt 1's ``order_id``. On the exchange
    that clientOid is a FAILURE and that order has the other clientOid.

    Why it is wrong: the upstream is told the truth about every funding line; ``funding.completed`` names the
    transfer that paid it (``client_oid`` and ``order_id`` are its fields, schema/outbound), and a consumer that
    checks the clientOid with KuCoin finds a failed transfer. The judgement knows which clientOid the entry names;
    it should be the one recorded."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "client_oid"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ev = events_for("found-later-attempt")
        rig.exchange.update_config({"transfer_failure_share": 1.0})
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)  # attempt 0 FAILED: blocked for a retry
        rig.exchange.update_config({"transfer_failure_share": 0.0})
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)  # attempt 1 paid
        assert rig.record(ref).transfers["found-later-attempt-kyc_approved#0"].attempt == 1

        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            settle_with(rig, app, ref)
            transfers = {t["orderId"]: t for t in rig.state()["transfers"]}
            (told,) = outbound_of(app, "funding.completed")
            real = transfers.get(told["order_id"])
            assert real is not None and real["status"] == "SUCCESS"
            failed = [t["clientOid"] for t in transfers.values() if t["status"] == "FAILURE"]
            assert told["client_oid"] == real["clientOid"], (
                f"told funding.completed for order {told['order_id']} (clientOid {real['clientOid'][:10]}…) under "
                f"clientOid {told['client_oid'][:10]}… (a FAILURE on the exchange: {told['client_oid'] in failed})"
            )
        finally:
            app.close()
    finally:
        rig.close()
