"""The broker's sub-account limit is its own cause: one create refused, one block that says so, no name attempts
burnt; once the limit is raised, `customer retry` creates the sub-account under the same name."""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for


def test_the_sub_account_limit_blocks_at_once_and_says_so(redis_url: str, key_prefix: str) -> None:
    """With the cap reached: one Add SubAccount, one listing, a block naming the limit, no name_unavailable."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(max_account_size=0))
    try:
        ev = events_for("at-limit")
        (ref,) = rig.publish(ev["created"])
        rig.settle(ref)
        record = rig.record(ref)
        assert record.name_attempt == 0 and record.sub_account is None
        block = record.blocked["subaccount"]
        assert block.reason.startswith("the broker's sub-account limit is reached")
        assert rig.transport.seen[("POST", "/api/v1/broker/nd/account")] == 1
        assert rig.transport.seen[("GET", "/api/v1/broker/nd/account")] == 1
        actions = [e["action"] for e in rig.app.store.journal(ref)]
        assert "name_unavailable" not in actions and "blocked" in actions
        (blocked,) = rig.blocked
        assert "sub-account limit" in str(blocked)

        rig.exchange.update_config({"max_account_size": 10})
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)
        (sub,) = rig.state()["subAccounts"]
        assert sub["accountName"] == rig.app.policy.naming.account_name("at-limit", 0)
    finally:
        rig.close()
