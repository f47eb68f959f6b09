"""`provisioner customer forget`: a closed customer's upstream id and KYC documents are erased from Redis, its
financial audit trail is kept and still shown by ref; an open customer is refused."""

from __future__ import annotations

from click.testing import CliRunner

from cli.main import main
from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for, kyc_documents
from tests.security.scan import hits, redis_values

CUSTOMER = "forget.me@example.org"


def test_forget_erases_the_upstream_id_and_documents_and_keeps_the_audit_trail(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(kyc_review_ms=0, initial_balances={"MAIN": {"USDT": "500"}}))
    try:
        ev = {kind: {**e, "id": f"evt-{kind}"} for kind, e in events_for(CUSTOMER).items()}
        superseded = {**ev["kyc"], "id": "evt-kyc-0", "data": {**ev["kyc"]["data"], "kyc": kyc_documents("Ann")}}
        (ref,) = rig.publish(ev["created"], superseded, ev["kyc"])[:1]
        rig.settle(ref)
        env = {
            "REDIS_URL": rig.settings.redis_url,
            "PROVISIONER_REDIS_PREFIX": rig.settings.key_prefix,
            "KUCOIN_BROKER_BASE_URL": "http://127.0.0.1:9",
            "KUCOIN_SPOT_BASE_URL": "http://127.0.0.1:9",
        }
        runner = CliRunner()
        refused = runner.invoke(main, ["customer", "forget", CUSTOMER], env=env)
        assert refused.exit_code == 1 and "not closed: offboard it first" in refused.output
        # an open customer keeps its documents (never submitted here: proxy KYC is off)
        assert rig.app.redis.hlen(rig.app.keys.docs(ref)) == 1

        rig.publish(ev["offboard"])
        rig.settle(ref)
        before = rig.record(ref)
        assert before is not None and before.closed_at_ms is not None and before.transfers
        journal_before = rig.app.store.journal(ref)

        done = runner.invoke(main, ["customer", "forget", CUSTOMER], env=env)
        assert done.exit_code == 0, done.output
        assert "personal data erased" in done.output and "financial audit trail" in done.output
        assert f"customer show --ref {ref}" in done.output

        after = rig.record(ref)
        assert after is not None and after.customer_id == f"erased:{ref}"
        assert after.transfers == before.transfers and after.keys == before.keys, "the money trail is kept"
        journal = rig.app.store.journal(ref)
        assert journal[: len(journal_before)] == journal_before and journal[-1]["action"] == "customer.forgotten"
        assert rig.app.redis.exists(rig.app.keys.docs(ref), rig.app.keys.docs_digests(ref)) == 0
        customer_keys = [f"{key_prefix}:c:{ref}"]
        assert hits([CUSTOMER], redis_values(rig.app.redis, customer_keys)) == []
        snapshot = rig.app.store.snapshot(ref)
        assert {e.customer_id for e in snapshot.events} == {f"erased:{ref}"}, "the events still load"

        shown = runner.invoke(main, ["customer", "show", "--ref", ref, "--json"], env=env)
        assert shown.exit_code == 0 and CUSTOMER not in shown.output and ref in shown.output
        again = runner.invoke(main, ["customer", "forget", "--ref", ref], env=env)
        assert again.exit_code == 0 and "already erased" in again.output
    finally:
        rig.close()
