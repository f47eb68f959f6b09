"""A worker that finds Redis empty, on a host without a state mirror, asks the exchange whether sub-accounts of ours
exist (``bootstrap.exchange_traces``, ``StateGuard._create``): none listed → a fresh deployment. The listing is read
at once, although the exchange lists a new sub-account only ``PROVISIONER_LISTING_LAG_MS`` after it created it —
the lag the worker waits out everywhere else before it trusts a listing."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound, usdt_held
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, second_host, settle_with
from worker.store.epoch import StateLost

pytestmark = pytest.mark.redis


def test_a_loss_within_the_listing_lag_of_a_new_deployment_goes_unnoticed(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: a new deployment (or a new key prefix) onboards its first customer R: within seconds sub-account S,
    key K and 250 USDT. KuCoin lists a new sub-account up to 4 minutes late (``PROVISIONER_LISTING_LAG_MS=300000``).
    A minute later Redis restarts without persistence and the worker is rescheduled on a new host (a container: its
    ``PROVISIONER_STATE_DIR`` mirror is gone with the old one). Then R's offboarding arrives.

    What happens: the starting worker finds no epoch in Redis and no mirror, and asks the exchange for sub-accounts
    named like ours: S is not listed yet, so the state is taken for a fresh deployment — no ``StateLost``, no
    ``provisioner recover``, no audit. R's offboarding makes a record with no sub-account: it is closed at once
    ("offboarded before created"), ``customer.offboarded`` told with no uid and nothing swept.

    Why it is wrong: README 8 — a lost Redis is "detected, never started over"; here it is started over. K stays live
    at the exchange (an orphan key, never revoked), the 250 USDT stay in S, and the upstream is told R was closed.
    Any later event of R is refused (closed). (Not shown here: any other customer onboarded in those minutes is
    equally unknown — no recovered epoch, so nothing of theirs is audited or looked for before it is acted on.)

    Suggested fix: a fresh epoch only once a sub-account listing read at least ``listing_lag_ms`` after the empty
    Redis was found still shows none of ours (wait, or refuse to start with ``StateLost('uninitialised')`` until
    then), or ask Get Broker Info's ``accountSize`` (counts a new sub-account at once) and refuse when it is not 0.

    Likelihood: very low — a Redis loss in the first minutes of a deployment (or a prefix), on a host without its
    mirror. Impact: a live trading key and funding left on a closed customer, the loss itself unnoticed.
    """
    config = SandboxConfig.from_dict({"listing_lag_ms": 240_000})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_LISTING_LAG_MS="300000")
    try:
        ev = events_for("lag-new")
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.run(ref)
        record = rig.record(ref)
        assert record.sub_account is not None and len(record.live_keys) == 1, record
        uid, k = record.sub_account.uid, record.live_keys[0].api_key
        assert usdt_held(rig, uid) == Decimal("250")

        rig.clock.advance_ms(60_000)
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)  # a new host: no mirror
        app = second_host(rig, same_host=True)
        try:
            try:
                app.state.establish()  # what a starting worker does
            except StateLost:
                return  # the loss is caught: nothing to show
            accepted = app.intake.accept(ev["offboard"])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)
            settle_with(rig, app, ref)

            closed = app.store.load(ref)
            live = [x["apiKey"] for x in rig.state()["apiKeys"] if x["deletedAt"] is None]
            held = usdt_held(rig, uid)
            told = [e for e in outbound(app) if e["type"] == "customer.offboarded"]
            assert closed is None or closed.closed_at_ms is None or (k not in live and held == 0), (
                f"an empty Redis was taken for a fresh deployment ({accepted}); customer closed ({told}) while its "
                f"sub-account {uid} keeps key {k} live ({live}) and {held} USDT"
            )
        finally:
            app.close()
    finally:
        rig.close()
