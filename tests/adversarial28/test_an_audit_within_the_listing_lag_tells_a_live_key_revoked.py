"""3b7fe24 made the recovery's audit tell ``api_key.revoked`` ("no longer on the exchange") for every key the record
holds live that the exchange's key listing does not show (``audit_steps._keys_as_listed``). A listing is not the
exchange's whole truth for a key created within ``PROVISIONER_LISTING_LAG_MS`` (the setting exists because Get
SubAccount API shows a new key only after a while; the worker waits that long before it trusts a listing everywhere
else: a lost create, the close). The audit reads the listing at once, whatever the age of the keys it holds."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound, outbound_of, restore_state, snapshot_state
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import redeliver, second_host, settle_with
from worker.recovery import recover

pytestmark = pytest.mark.redis


def test_an_audit_within_the_listing_lag_tells_a_live_key_revoked(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: KuCoin lists a new API key up to 4 minutes after it created it; the worker is told so
    (``PROVISIONER_LISTING_LAG_MS=300000``). Customer R has key K0; a rotation is requested and K1 is issued
    (answered, sealed, ``api_key.issued`` K1 written); K0 stays live for the rotation grace. Seconds later Redis
    is rolled back to a snapshot that already holds K1 (an asynchronous failover, the last ``everysec`` second, a
    restore of a backup taken right after the rotation); the workers halt, the on-call runs ``provisioner
    recover`` a minute later and the upstream re-publishes R's events — all within the 4 minutes the exchange
    takes to list K1.

    What happens: the audit lists R's keys; the exchange shows K0 only. K1, live in the record with its sealed
    secret, is marked revoked ("no longer on the exchange"), its secret dropped, and — new in 3b7fe24 —
    ``api_key.revoked`` K1 is told to the upstream. K1 is live at the exchange. The planner then finds no live key
    of generation 1 and issues K1' (``api_key.issued``), and revokes K0 after the grace. End: the exchange has K1
    and K1' live; the record and the upstream hold only K1'. Nothing ever looks at K1 again (it is recorded, so a
    later listing does not take it for unknown); only an offboarding's ``ListKeys`` would revive and delete it.

    Why it is wrong: "api_key.revoked iff so at the exchange" — the upstream is told a live key was revoked (it
    drops the credentials the customer's bot is using, or trusts that a leaked K1 is dead); and "never an orphan API
    key" — K1 stays live at the exchange with trading permissions, unknown to our record as live, its secret
    dropped, counting against the live-key cap.

    Suggested fix: in ``_keys_as_listed`` (and ``key_steps.list_keys``) treat a recorded live key created less than
    ``listing_lag_ms`` before the listing as listed (not gone); or have the audit wait until every live key it holds
    is older than the lag (an ``Idle`` with a wake-up) before it lists.

    Likelihood: low — a recovery within the listing lag of a key issuance (a rotation, onboarding) just before the
    loss; larger the longer KuCoin's real lag and the more automated the recovery. Impact: a false revocation told
    to the upstream and an orphan live key.
    """
    config = SandboxConfig.from_dict({"listing_lag_ms": 240_000})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_LISTING_LAG_MS="300000")
    try:
        ev = events_for("lag-key", funding=())
        ref, _ = onboard_with_a_key(rig, "lag-key")
        k0 = rig.record(ref).live_keys[0].api_key
        rig.clock.advance_ms(3_600_000)  # long since listed, like the sub-account
        rig.publish(ev["rotate"])
        rig.run(ref)  # K1 issued; K0 live for the grace
        record = rig.record(ref)
        assert [k.live for k in record.keys] == [True, True], record.keys
        k1 = next(k.api_key for k in record.keys if k.api_key != k0)
        assert k1 in {e["api_key"] for e in outbound_of(rig, "api_key.issued")}
        rig.clock.advance_ms(10_000)
        snapshot = snapshot_state(rig)  # holds K1, sealed
        heard = outbound(rig)

        rig.clock.advance_ms(10_000)
        rig.publish(ev["ip"])  # written after the backup: lost with the rollback (K0's grace is not over yet)
        rig.run(ref)
        rig.app.state.check()
        restore_state(rig, snapshot)
        rig.clock.advance_ms(60_000)  # 80 s after K1 was issued: the exchange does not list it yet
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: failover to a replica")
            assert report.detected.startswith("rolled_back"), report
            ref2 = redeliver(app, [ev["created"], ev["kyc"], ev["rotate"], ev["ip"]])
            assert ref2 == ref
            settle_with(rig, app, ref)
            rig.clock.advance_ms(600_000)  # long past the listing lag
            settle_with(rig, app, ref)

            live = {k["apiKey"] for k in rig.state()["apiKeys"] if k["deletedAt"] is None}
            assert k1 in live  # the exchange never deleted K1
            events = heard + outbound(app)
            told_issued = {e["api_key"] for e in events if e["type"] == "api_key.issued"}
            told_revoked = {e["api_key"]: e.get("reason") for e in events if e["type"] == "api_key.revoked"}
            recorded_live = {k.api_key for k in app.store.load(ref).live_keys}
            believed_live = told_issued - set(told_revoked)
            assert k1 not in told_revoked and believed_live == live and recorded_live == live, (
                f"the exchange has {sorted(live)} live; the upstream was told {told_revoked} revoked and holds "
                f"{sorted(believed_live)}; the record holds {sorted(recorded_live)} live — {k1} is live "
                "at the exchange, told revoked and orphaned"
            )
        finally:
            app.close()
    finally:
        rig.close()
