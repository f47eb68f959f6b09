"""A new name-secret version names new customers' sub-accounts; customers created before keep their names (a new
name would create a second sub-account)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.harness import CrashingTransport, Rig, events_for, settings_for
from worker.bootstrap import build_app

pytestmark = pytest.mark.redis

V2 = "2=Zq8v3Lr7Xw1Nc5Tb9Hk2Jm6Pd4Fs0Gy8Ue"


def rig_on(first: Rig, redis_url: str, key_prefix: str, **settings: str) -> Rig:
    """Another deployment configuration over the same Redis, exchange and clock (a restart with new settings)."""
    rig = Rig.__new__(Rig)
    rig.clock, rig.exchange = first.clock, first.exchange
    rig.transport = CrashingTransport(first.exchange.transport())
    rig.settings = settings_for(redis_url, key_prefix, **settings)
    rig.app = build_app(rig.settings, transport=rig.transport, clock=rig.clock)
    rig.app.state.establish(ask_exchange=False)
    rig.reports, rig.blocked = [], []
    return rig


def test_existing_customers_keep_their_names_and_new_ones_take_the_new_version(redis_url: str, key_prefix: str) -> None:
    first = Rig(redis_url, key_prefix)
    old = events_for("named-before")
    (ref_old,) = first.publish(old["created"], old["kyc"])[:1]
    first.settle(ref_old)
    name_before = first.record(ref_old).sub_account.account_name
    assert first.record(ref_old).name_version == 1
    rig = rig_on(first, redis_url, key_prefix, PROVISIONER_NAME_SECRETS=V2)
    try:
        naming = rig.app.policy.naming
        assert naming.current_version == 2
        new = events_for("named-after")
        rig.publish(old["ip"], old["rotate"])
        (ref_new,) = rig.publish(new["created"], new["kyc"])[:1]
        rig.settle(ref_old)
        rig.settle(ref_new)
        kept: Any = rig.record(ref_old)
        assert kept.name_version == 1 and kept.sub_account.account_name == name_before
        assert name_before == naming.account_name("named-before", 0, version=1)
        made: Any = rig.record(ref_new)
        assert made.name_version == 2
        assert made.sub_account.account_name == naming.account_name("named-after", 0, version=2)
        assert made.sub_account.account_name != naming.account_name("named-after", 0, version=1)
        names = sorted(s["accountName"] for s in rig.state()["subAccounts"])
        assert names == sorted([name_before, made.sub_account.account_name]), "no second sub-account for anyone"
        published = [old["created"], old["kyc"], old["ip"], old["rotate"], new["created"], new["kyc"]]
        assert rig.verify(published) == []
    finally:
        rig.close()
        first.close()


def test_after_a_loss_a_customer_named_under_version_1_is_found_and_keeps_version_1(
    redis_url: str, key_prefix: str
) -> None:
    """Redis lost everything; the deployment now has version 2. Recovery rebuilds the customer's record (new records
    take version 2) and the audit finds its version-1 sub-account: the record takes version 1, no second one."""
    from tests.core.test_lost_state import LIFECYCLE, lose_everything, redeliver, settle_with
    from worker.recovery import recover

    first = Rig(redis_url, key_prefix)
    ev = events_for("named-then-lost")
    (ref,) = first.publish(*(ev[name] for name in LIFECYCLE))[:1]
    first.settle(ref)
    name_before = first.record(ref).sub_account.account_name
    lose_everything(first)
    settings = settings_for(redis_url, key_prefix, PROVISIONER_NAME_SECRETS=V2)
    app = build_app(settings, transport=first.transport, clock=first.clock)
    try:
        recover(app, reason="test: a loss after a new name-secret version")
        ref = redeliver(app, [ev[name] for name in LIFECYCLE])
        assert not settle_with(first, app, ref)
        record: Any = app.store.load(ref)
        assert record.name_version == 1 and record.sub_account.account_name == name_before
        assert len(first.state()["subAccounts"]) == 1
    finally:
        app.close()
        first.close()
