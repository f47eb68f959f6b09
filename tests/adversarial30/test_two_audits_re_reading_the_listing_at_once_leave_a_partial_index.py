"""91b4ff6: a recovery's audit that finds no sub-account in the index ``provisioner recover`` took waits until
``lost_at + PROVISIONER_LISTING_LAG_MS``, then — if the index is older than that (``recovery_accounts_at``) — reads
the whole listing again into the index (``audit_steps._find_once_listed`` → ``write_sub_account_index``). The check
and the write are not exclusive: every customer waiting for the listing wakes at the same moment, and two workers can
re-read it together. ``write_sub_account_index`` stages into one shared key (``{prefix}:recovery:accounts:new``),
deleting it first and writing 500 sub-accounts per round trip, then renames it over the index: one worker's
``DELETE`` between the other's chunks, or its ``RENAME`` before the other's last chunk, leaves an index holding only
part of the listing — stamped as read after the lag, so it is never read again."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound, usdt_held
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis

LISTING = ("GET", "/api/v1/broker/nd/account")


def test_two_audits_re_reading_the_listing_at_once_leave_a_partial_index(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: a broker with ~600 sub-accounts (our customers), KuCoin's listing lag 4 minutes,
    ``PROVISIONER_LISTING_LAG_MS=300000``. Customer Y, one of the oldest, has sub-account S (key K, 250 USDT). Redis
    restarts without persistence; the on-call runs ``provisioner recover`` (the index: all 601) and declares the
    re-publication. In the next minutes two new customers N1 and N2 sign up: neither has a sub-account in the index,
    so each audit waits (``LISTING_WAIT``) until ``lost_at + lag`` — both wake at that same moment, on two workers.
    The upstream's re-publication of older customers is still going on: Y's events (its offboarding among them)
    arrive after that moment.

    What happens: N1's worker sees the index older than the lag and re-reads the listing: ``DELETE`` the staging
    key, six pages, the first 500 written to the staging key. N2's worker, between N1's pages, does the same from
    the start: its ``DELETE`` drops N1's first chunk, it writes all 601 and renames. N1 goes on with its last page,
    writes its second chunk (101 sub-accounts) into a fresh staging key and renames it over the index. Both stamp
    the index as read after the lag. The index now holds 101 of 601 sub-accounts, S not among them, and is never
    read again. Y's audit finds no sub-account (``_find_sub_account``; ``_find_once_listed`` trusts the stamp); the
    planner sees an offboarded customer without a sub-account and closes it at once, ``customer.offboarded`` with
    no uid, nothing revoked or swept.

    Why it is wrong: "never an orphan API key" and offboarding's promise (README 6: closed only when no key is live
    and the balances are back): K stays live with trading permissions, the 250 USDT stay in S, the upstream is told
    Y was closed; the closed record is ``Idle`` for good. A customer that is not offboarded is saved by the create's
    "name exists" refusal, an offboarded one is not (the case 91b4ff6 set out to fix, adv29).

    Suggested fix: make the re-read exclusive and the index whole: stage under a key unique to the reader
    (``{key}:new:<uuid>``) and rename it atomically with the stamp (a Lua script or MULTI that also checks the stamp
    is still older than the lag), or take a short Redis lock around the re-read; a reader that loses the race reads
    the index the winner wrote. (``provisioner recover`` run again during the audits races the same way.)

    Likelihood: low — more than 500 listed sub-accounts (any real broker), two or more customers waiting for the
    listing after a recovery (new sign-ups in the lag, sub-accounts too new at the loss) re-read at the same moment
    on two workers, and an offboarded customer whose re-published events arrive after. Impact: a live trading key
    and funding left on a customer told closed, unseen by every check.
    """
    config = SandboxConfig.from_dict({"listing_lag_ms": 240_000})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_LISTING_LAG_MS="300000")
    try:
        ev = events_for("index-y")
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        record = rig.record(ref)
        assert record.sub_account is not None and len(record.live_keys) == 1, record
        uid, k = record.sub_account.uid, record.live_keys[0].api_key
        assert usdt_held(rig, uid) == Decimal("250")
        # 600 more customers onboarded after Y (only their sub-accounts matter here: they fill the listing)
        naming, now = rig.app.policy.naming, int(rig.clock() * 1000)
        with rig.exchange.lock:
            for i in range(600):
                rig.exchange.state.add_subaccount(naming.name_candidates(f"later-{i}")[0][2], now + 1000 + i)
        rig.clock.advance_ms(3_600_000)  # every sub-account long since listed

        lose_everything(rig)
        rig.clock.advance_ms(60_000)
        app, app2 = second_host(rig, same_host=True), second_host(rig, same_host=True)  # two workers
        try:
            report = recover(app, reason="test: Redis restarted without persistence")
            assert report.sub_accounts == 601, report
            declare_republished(app)
            rig.clock.advance_ms(30_000)
            n1, n2 = events_for("index-n1"), events_for("index-n2")
            r1 = redeliver(app, [n1["created"], n1["kyc"]])
            r2 = redeliver(app, [n2["created"], n2["kyc"]])
            for r in (r1, r2):
                app.due.cancel(r)
                waiting = app.reconciler.run(r)
                assert waiting.waited_pool == "listing", waiting  # both wait for the listing, due at one moment
            listed_by = int(app.redis.get(app.keys.recovery_lost_at)) + 300_000
            rig.clock.advance_ms(listed_by - int(rig.clock() * 1000))

            base = rig.transport.seen.get(LISTING, 0)

            def n2_worker() -> None:  # N2's worker runs its audit while N1's is between pages 5 and 6
                if rig.transport.seen.get(LISTING, 0) - base < 6:
                    rig.transport.after.append((*LISTING, n2_worker))
                    return
                app2.due.cancel(r2)
                app2.reconciler.run(r2)

            rig.transport.after.append((*LISTING, n2_worker))
            app.due.cancel(r1)
            app.reconciler.run(r1)
            indexed = app.redis.hlen(app.keys.recovery_accounts)

            # the re-publication of older customers goes on: Y's events, its offboarding among them
            assert redeliver(app, [ev["created"], ev["kyc"], ev["offboard"]]) == ref
            settle_with(rig, app, ref)
            rig.clock.advance_ms(3_600_000)
            settle_with(rig, app, ref)

            closed = app.store.load(ref)
            live = [x["apiKey"] for x in rig.state()["apiKeys"] if x["deletedAt"] is None]
            held = usdt_held(rig, uid)
            told = [e for e in outbound(app) if e["type"] == "customer.offboarded"]
            assert closed.closed_at_ms is None or (k not in live and held == 0), (
                f"the index holds {indexed} of the 601 listed sub-accounts; customer closed ({told}) while its "
                f"sub-account {uid} keeps key {k} live and {held} USDT; the record holds {closed.sub_account}"
            )
        finally:
            app.close()
            app2.close()
    finally:
        rig.close()
