"""``provisioner recover`` lists the broker's sub-accounts once (``recovery.index_sub_accounts``) and the customer's
audit looks for its sub-account only in that listing (``audit_steps._find_sub_account``). The exchange lists a new
sub-account only ``PROVISIONER_LISTING_LAG_MS`` after it created it. A customer that is not offboarded recovers from
that: its create is refused ("name exists"), and ``resolve_sub_account`` lists again once the lag has passed. An
offboarded one does not: the planner closes a record without a sub-account at once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound, usdt_held
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis


def test_an_offboarding_after_a_recovery_closes_a_sub_account_not_listed_yet(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: KuCoin lists a new sub-account up to 4 minutes after it created it; the worker is told so
    (``PROVISIONER_LISTING_LAG_MS=300000``). Customer R is approved: within seconds its sub-account S is created,
    key K issued (``api_key.issued``) and 250 USDT sent (``funding.completed``). Seconds later Redis restarts
    without persistence; the on-call runs ``provisioner recover`` a minute later (an automated failover runbook),
    the upstream re-publishes R's events — and R's offboarding, which the upstream sent meanwhile (or which was in
    the queue lost with Redis). All within the 4 minutes the exchange takes to list S.

    What happens: ``recover`` lists the sub-accounts: S is not listed yet. R's audit finds no sub-account in that
    listing and records none. The planner sees an offboarded customer without a sub-account and closes it at once
    ("offboarded before its sub-account was created"), tells the upstream ``customer.offboarded`` with no uid and
    nothing swept. A closed record without a sub-account is ``Idle("closed")`` for good: nothing ever looks at S
    again. K stays live at the exchange with trading permissions, the 250 USDT stays in S.

    Why it is wrong: "never an orphan API key" and offboarding's promise (README 6: a customer is closed only when
    no key is live and the balances are back): K is live, unrevoked, on a closed customer's sub-account; the money is
    never swept back; the upstream is told the customer was closed cleanly. A customer that is not offboarded is
    protected by the create's refusal and the listing wait (``_settle``: a refused create is resolved only
    ``listing_lag_ms`` later); the offboarding path skips both.

    Suggested fix: in ``plan``, a record of a recovered epoch (``audit_epoch`` set, or ``recovered_at_ms``) without a
    sub-account must not close before a listing taken ``listing_lag_ms`` after the loss shows none of the customer's
    names: have the audit wait (``own_wait(LISTING_WAIT)``) until ``lost_at + listing_lag_ms`` before it concludes
    "no sub-account", or list the sub-accounts again by name at the close of a recovered record.

    Likelihood: low — an offboarding re-published (or sent) right after a recovery that ran within the listing lag
    of the customer's onboarding; larger the longer KuCoin's real lag and the more automated the recovery. Impact:
    a live trading key and the customer's funding left behind on a closed customer, unseen by every check.
    """
    config = SandboxConfig.from_dict({"listing_lag_ms": 240_000})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_LISTING_LAG_MS="300000")
    try:
        ev = events_for("lag-sub")
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.run(ref)  # sub-account, key and the funding line, within seconds
        record = rig.record(ref)
        assert record.sub_account is not None and len(record.live_keys) == 1, record
        uid = record.sub_account.uid
        k = record.live_keys[0].api_key
        assert usdt_held(rig, uid) == Decimal("250")
        heard = outbound(rig)
        assert {e["type"] for e in heard} >= {"sub_account.created", "api_key.issued", "funding.completed"}

        rig.clock.advance_ms(10_000)
        lose_everything(rig)
        rig.clock.advance_ms(50_000)  # a minute after S was created: the exchange does not list it yet
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: Redis restarted without persistence")
            assert report.sub_accounts == 0, report  # S is not listed yet
            ref2 = redeliver(app, [ev["created"], ev["kyc"], ev["offboard"]])
            assert ref2 == ref
            declare_republished(app)
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)  # long past every lag
            settle_with(rig, app, ref)

            closed = app.store.load(ref)
            live = [x["apiKey"] for x in rig.state()["apiKeys"] if x["deletedAt"] is None]
            held = usdt_held(rig, uid)
            offboarded = [e for e in outbound(app) if e["type"] == "customer.offboarded"]
            assert closed.closed_at_ms is None or (k not in live and held == 0), (
                f"customer closed ({offboarded}) while its sub-account {uid} keeps key {k} live ({live}) and "
                f"{held} USDT; the record holds sub-account {closed.sub_account}"
            )
        finally:
            app.close()
    finally:
        rig.close()
