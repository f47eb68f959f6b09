"""c7f33f9 made the recovery's audit wait for the key listing (``audit_steps._wait_for_the_listing``) — but only for
keys it already knows of: a live key of the record (a restored snapshot) or one the ``--heard`` file says the
upstream holds. After a total loss recovered without ``--heard`` (or with a file that had not received the key's
``api_key.issued`` yet) the audit knows of no key, so it reads the key listing at once. The exchange lists a new key
only ``PROVISIONER_LISTING_LAG_MS`` after it created it: a key issued within that lag before the recovery is not
shown, the audit records none, and the planner issues another one. 91b4ff6 made the sub-account's audit wait out the
lag after a loss whatever it knows; the keys' audit does not."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound, outbound_of, usdt_held
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis


def test_a_key_issued_within_the_listing_lag_of_a_total_loss_is_orphaned(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: KuCoin lists a new API key up to 4 minutes after it created it; the worker is told so
    (``PROVISIONER_LISTING_LAG_MS=300000``). Customer R was created an hour ago (sub-account S, long since listed);
    its KYC approval arrives now (the usual gap between sign-up and KYC): key K0 is issued (``api_key.issued`` K0
    written, the secret sealed) and 250 USDT sent. Ten seconds later Redis restarts without persistence; the on-call
    runs ``provisioner recover`` a minute later (without ``--heard``, which the README allows: or with a file in
    which K0's ``api_key.issued`` had not arrived yet), the upstream re-publishes R's events and the re-publication
    is declared.

    What happens: the audit finds S in the recovery's listing, and lists S's keys at once: K0 is 70 s old, not
    listed yet. ``_wait_for_the_listing`` waits only for keys the record or the heard file knows — neither knows K0
    (the record was lost with Redis, no file was given) — so the audit records no key. The planner then issues
    generation 0 again: K0' (``api_key.issued`` K0'). K0 stays live at the exchange with trading permissions; no
    record holds it, nothing lists S's keys again until an offboarding; the upstream, which may have received K0
    before the loss, is never told it was revoked.

    Why it is wrong: "never an orphan API key" — K0 is live at the exchange, unknown to the worker (and its
    credentials may be with the upstream or nowhere). README 8 promises the audit judges keys only "once the
    exchange must list every key (``PROVISIONER_LISTING_LAG_MS`` after the key's creation or the loss)"; here it
    judges the absence of keys right after the loss. 91b4ff6 applies exactly that rule to a sub-account the listing
    does not show (``_find_once_listed``); the keys' audit applies it only to keys it already knows.

    Suggested fix: in ``audit_from_exchange``, after a loss (``recovery_lost_at`` set), list the sub-account's keys
    only once ``now >= lost_at + listing_lag_ms`` (``own_wait(LISTING_WAIT)`` until then), whatever the record and
    the heard file hold — or, cheaper, wait only when the sub-account is younger than the lag or the listing shows
    fewer keys than the desired state expects.

    Likelihood: low-medium — any key issued (KYC approval, rotation) within the listing lag before a total loss
    recovered quickly (an automated runbook) without ``--heard``, or before the upstream received its event.
    Impact: a live trading key nobody holds in the record; its credentials may have been delivered.
    """
    config = SandboxConfig.from_dict({"listing_lag_ms": 240_000})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_LISTING_LAG_MS="300000")
    try:
        ev = events_for("lag-key-total")
        ref = rig.publish(ev["created"])[0]
        rig.settle(ref)  # sub-account S
        rig.clock.advance_ms(3_600_000)  # S long since listed
        rig.publish(ev["kyc"])
        rig.settle(ref)  # key K0 and the funding
        record = rig.record(ref)
        assert record.sub_account is not None and len(record.live_keys) == 1, record
        uid, k0 = record.sub_account.uid, record.live_keys[0].api_key
        assert usdt_held(rig, uid) == Decimal("250")
        assert k0 in {e["api_key"] for e in outbound_of(rig, "api_key.issued")}
        heard = outbound(rig)

        rig.clock.advance_ms(10_000)
        lose_everything(rig)
        rig.clock.advance_ms(60_000)  # 70 s after K0 was issued: the exchange does not list it yet
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: Redis restarted without persistence")
            assert report.ours == 1, report  # S is found
            assert redeliver(app, [ev["created"], ev["kyc"]]) == ref
            declare_republished(app)
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)  # long past every lag
            settle_with(rig, app, ref)

            live = {x["apiKey"] for x in rig.state()["apiKeys"] if x["deletedAt"] is None}
            recorded_live = {k.api_key for k in app.store.load(ref).live_keys}
            events = heard + outbound(app)
            told_issued = [e["api_key"] for e in events if e["type"] == "api_key.issued"]
            told_revoked = [e["api_key"] for e in events if e["type"] == "api_key.revoked"]
            assert live == recorded_live, (
                f"the exchange has {sorted(live)} live on {uid}, the record holds {sorted(recorded_live)}: "
                f"{k0} is an orphan (told issued {told_issued}, revoked {told_revoked})"
            )
            # K0's secret went with the loss: found once listed, it is revoked and re-issued, the upstream told both
            assert k0 not in live and k0 in told_revoked, (told_issued, told_revoked)
            assert set(told_issued) - set(told_revoked) == live
        finally:
            app.close()
    finally:
        rig.close()
