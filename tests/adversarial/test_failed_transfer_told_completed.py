"""A transfer the exchange accepted and then FAILED (nothing moved) must never be told as ``funding.completed``.

Under ``duplicate_client_oid=reject`` the exchange refuses *any* repeat of a used clientOid, including the clientOid
of a transfer that failed. The worker reads "clientOid duplicated" as proof that money moved (``Evidence.DUPLICATE``)
and tells the upstream the line was funded."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Crash, Rig


@pytest.mark.parametrize("worker_mode", ["reject", "unknown"])
def test_lost_answer_of_a_failed_transfer_is_told_completed(redis_url: str, key_prefix: str, worker_mode: str) -> None:
    """funding.completed iff the transfer exists: a lost answer of an accepted-then-FAILED transfer is told paid."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "reject", "transfer_failure_share": 1.0}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR=worker_mode,
    )
    try:
        ref, uid = onboard_with_a_key(rig, f"failed-{worker_mode}")
        set_faults(rig, "transfer", drop=1.0)  # accepted (then FAILED), answer lost
        rig.publish(topup(f"failed-{worker_mode}", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)

        assert paid_to(rig, uid) == [], "the exchange moved nothing (the transfer FAILED)"
        completed = outbound_of(rig, "funding.completed")
        assert completed == [], f"told funded although no money moved: {completed}"
    finally:
        rig.close()


def test_crash_between_the_two_commits_of_a_failure_resends_the_failed_clientoid(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """funding.completed iff the transfer exists: a crash inside _failed re-sends a FAILED clientOid, told paid."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "reject", "transfer_failure_share": 1.0}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="reject",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "failed-crash")
        from worker.provisioning import money_steps

        real_fail = money_steps.fail
        crashed: list[bool] = []

        def dying_fail(*args: object, **kwargs: object) -> None:
            if not crashed:
                crashed.append(True)
                raise Crash("the process dies after _failed's first commit, before the block is recorded")
            real_fail(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(money_steps, "fail", dying_fail)
        rig.publish(topup("failed-crash", "topup", 5, [("USDT", "250")]))
        rig.settle(ref, on_crash=lambda crash: None)

        assert crashed, "the crash point was reached"
        assert paid_to(rig, uid) == []
        completed = outbound_of(rig, "funding.completed")
        assert completed == [], f"told funded although no money moved: {completed}"
    finally:
        rig.close()


def test_an_operators_correct_not_committed_on_a_failed_transfer_is_told_completed(
    redis_url: str, key_prefix: str
) -> None:
    """funding.completed iff the transfer exists: a correct operator not_committed on a FAILED transfer is told paid."""
    from worker.provisioning.operator import settle_transfer

    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict(
            {"duplicate_client_oid": "reject", "transfer_failure_share": 1.0, "ledger_context": "none"}
        ),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown",
    )
    try:
        ref, uid = onboard_with_a_key(rig, "op-failed")
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("op-failed", "topup", 5, [("USDT", "250")]))
        rig.run(ref)  # accepted, then FAILED; the answer is lost
        set_faults(rig, "transfer", drop=0.0)
        rig.exchange.update_config({"transfer_failure_share": 0.0})
        other, _ = onboard_with_a_key(rig, "op-other")  # another customer's 250 makes the ledger undecidable
        rig.publish(topup("op-other", "topup", 5, [("USDT", "250")]))
        rig.settle(other)
        rig.settle(ref)
        manual = [s for s, b in rig.record(ref).blocked.items() if b.manual]
        assert manual == ["fund:op-failed-topup#0"]
        failed_oid = rig.record(ref).blocked[manual[0]].intent.token
        settle_transfer(rig.app, ref, manual[0], committed=False, who="oncall", note="KuCoin: FAILURE")
        rig.settle(ref)
        # re-sent under the same clientOid: "duplicated", and a ledger without ids cannot tell (the operator could
        # be wrong: nothing is sent on one word alone); the operator, asked again about that transfer, says FAILED
        (again,) = [s for s, b in rig.record(ref).blocked.items() if b.manual]
        assert "holds a transfer under clientOid" in rig.record(ref).blocked[again].reason
        assert paid_to(rig, uid) == []
        settle_transfer(rig.app, ref, again, committed=False, who="oncall", note="KuCoin: that one FAILED")
        rig.settle(ref)
        paid = paid_to(rig, uid)
        assert len(paid) == 1 and paid[0]["clientOid"] != failed_oid, "paid once, under a new clientOid"
        completed = [e for e in outbound_of(rig, "funding.completed") if e["customer_id"] == "op-failed"]
        assert [e["client_oid"] for e in completed] == [paid[0]["clientOid"]], "told of the transfer that exists"
    finally:
        rig.close()
