"""53458c2 fixed adv55's blocked key update by marking the key ``access_in_doubt`` in the commit that blocks it; the
retry then sends the newest access whatever the record says. A block written by the version before that field
(f4ea629, on main for half an hour: it blocked the update and kept the intent in the block, without the mark) is read
by this version as a key whose access is settled: the retry lifts the block and compares the record's stale
whitelist with the newest list, exactly as before the fix. Nothing on the block itself (its kept ``UpdateKeyDetails``
intent) is used to recover the doubt. (Fixed in 90c8231: the retry that lifts an update block keeping its write marks
the key; since the review after it, that is the only place the mark is set.)
"""

from __future__ import annotations

import json

import pytest

from handlers import steps
from tests.adversarial.helpers import set_faults
from tests.core.harness import Rig, events_for
from tests.provisioning.test_stuck_unknown import _drive

pytestmark = pytest.mark.redis

HOUR_MS = 3_600_000
FIRST = ["203.0.114.10"]
SECOND = ["198.51.101.7", "198.51.101.8"]


def _whitelist_on_exchange(rig: Rig, api_key: str) -> list[str]:
    return next(list(k["ipWhitelist"]) for k in rig.state()["apiKeys"] if k["apiKey"] == api_key)


def _as_written_before_the_field(rig: Rig, ref: str) -> None:
    """The stored record as f4ea629 wrote the block: the same bytes without ``access_in_doubt`` (the field did not
    exist; its default reads as False)."""
    key = rig.app.keys.record(ref)
    stored = json.loads(rig.app.redis.get(key))
    for entry in stored["keys"]:
        entry.pop("access_in_doubt", None)
    rig.app.redis.set(key, json.dumps(stored))


def test_an_update_blocked_before_access_in_doubt_keeps_the_reverted_whitelist(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: adv55's: every Modify SubAccount API for whitelist B is applied, its answer lost, past
    ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS``; the update is blocked with its intent kept. The block was written by
    f4ea629 (before 53458c2 added ``KeyRecord.access_in_doubt``); the worker is then upgraded to this version. The
    customer's whitelist goes back to A, the exchange recovers, the operator runs ``provisioner customer retry``.

    What happens: this version reads the key without the mark (False): ``_unblock`` lifts the block, the planner
    compares the record's A with the newest A and sends nothing. The exchange's key keeps B; nothing is blocked or
    told.

    Why it is wrong: README: "the live key's whitelist equals the newest list"; the block's reason says the retry
    "sends it again". The information needed is in the block itself (its kept ``UpdateKeyDetails`` intent), but only
    the mark written at block time is consulted.

    Suggested fix: let ``_unblock`` (or the planner) treat a key whose ``update:KEY`` block keeps an update intent
    as in doubt, whatever the stored mark says; or migrate such records on read.

    Likelihood: very low — only blocks written by a deployment of f4ea629..53458c2^ and still standing at the
    upgrade; the effect is adv55's (a key admitting addresses the customer gave up, silently).
    """
    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS="3600")
    try:
        ev = events_for("adv56-update-before-field", funding=())
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        api_key = rig.record(ref).live_keys[0].api_key

        set_faults(rig, "modify_sub_account_api", drop=1.0)  # applied, answer lost
        rig.publish(ev["ip"])
        _drive(rig, ref, for_ms=2 * HOUR_MS, until_blocked=True)
        record = rig.record(ref)
        block = record.blocked.get(steps.update(api_key))
        assert block is not None and block.intent is not None, "precondition: blocked with the intent kept"
        assert _whitelist_on_exchange(rig, api_key) == SECOND, "precondition: the exchange applied the update"
        _as_written_before_the_field(rig, ref)
        assert not rig.record(ref).live_keys[0].access_in_doubt

        back = {**ev["ip"], "id": f"{ev['ip']['id']}-back", "occurred_at": "2026-11-18T10:05:00Z"}
        back["data"] = {"ip_whitelist": FIRST}
        rig.publish(back)
        set_faults(rig, "modify_sub_account_api", drop=0.0)
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)

        record = rig.record(ref)
        assert not record.blocked, "precondition: the retry lifted the block"
        on_exchange = _whitelist_on_exchange(rig, api_key)
        assert on_exchange == FIRST, (
            f"newest whitelist {FIRST}, record {list(record.live_keys[0].ip_whitelist)}, exchange {on_exchange}: "
            "the update blocked before the field was retried as settled and nothing was sent"
        )
    finally:
        rig.close()
