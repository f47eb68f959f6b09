"""An operator's command builds its app with ``wait_for_quota=True`` (``cli/context.py``): exchange calls are gated
by ``WaitingGate``, which *sleeps* until the shared rate limit admits the call (up to 300 s). But
``KucoinHttp.call`` signs the request — ``KC-API-TIMESTAMP`` from the clock — before ``self._gate.acquire``: a call
that waited 5 s or more reaches KuCoin with a timestamp it refuses (400002 "Invalid KC-API-TIMESTAMP.",
docs/kucoin-api.md §2.4), which the client classifies ``AuthConfigError``."""

from __future__ import annotations

import shutil
import time
from typing import Any

import pytest

from tests.adversarial.helpers import onboard_with_a_key, set_faults
from tests.core import harness
from tests.core.harness import Rig
from tests.core.test_lost_state import lose_everything
from worker.bootstrap import build_app
from worker.exchange import AuthConfigError, RateLimitedError
from worker.recovery import declare_republished, recover

pytestmark = pytest.mark.redis


class WallClock(harness.Clock):
    """Real time for the worker and the exchange alike (the shared limiter runs on Redis' clock and KuCoin checks a
    request's timestamp against its own); ``advance_ms`` still jumps both together."""

    def __init__(self, now: float = 0.0) -> None:
        super().__init__(0.0)

    def __call__(self) -> float:
        return time.time() + self.now


def test_a_declaration_that_waits_out_a_429_is_refused_for_its_stale_timestamp(
    redis_url: str, key_prefix: str, monkeypatch: Any
) -> None:
    """
    Scenario: Redis lost our state; ``provisioner recover`` ran and the workers are back at work, reading the Special
    Account's ledger for every recovered customer (the Management pool: a third of all calls after a loss, README
    "Benchmark"). One of those reads meets KuCoin's 429; its answer says the window resets in 8 s, and the shared
    limiter blocks the Management pool for every process until then (README "Rate limits"). The upstream has
    re-published; the on-call runs ``provisioner recover --republished`` (``declare_republished``), built like every
    command with ``wait_for_quota=True``. Its first call is the day's ledger read (``seed_daily_caps``).

    What happens: ``KucoinHttp.call`` signs the read (timestamp = now), then ``WaitingGate.acquire`` sleeps 8 s for
    the pool's reset, then sends it; KuCoin answers 400002 "Invalid KC-API-TIMESTAMP." (8 s > its 5 s tolerance).
    That is an ``AuthConfigError``, which ``declare_republished`` does not catch (it tolerates only
    ``RetryableError``: a4a1abc made the declaration go through when the exchange turns its read away): the command
    fails blaming credentials or clock, and nothing is declared — so, by design, **no funding line of any recovered
    customer is sent** until an on-call works out that the error is not what it says and tries again at a quiet
    moment.

    Why it is wrong: after a4a1abc (chaos: "recover --republished failed 26 times in a row on 429s ... funding then
    waited for good") the declaration is meant to go through whatever the exchange does with its read. Waiting for
    the quota, which is what a command is built to do, turns a 429 into a request KuCoin is sure to refuse, and
    into a page about credentials. Every waiting command has the same flaw (``settle-transfer``'s status read says
    "could not read order ... (Invalid KC-API-TIMESTAMP)", ``recover``'s own listing and ledger reads, ``exchange
    ...``); a campaign fills every window by design, so waits of up to a window (30 s) are routine.

    Suggested fix: sign after the gate admits the call (move ``sign_headers`` below ``self._gate.acquire`` and the
    send-deadline check in ``KucoinHttp.call``); and let the declaration tolerate any failure of its optional read.

    Likelihood: medium-high whenever a command runs while the pools are busy (after a loss they are, with every
    customer's ledger search); unseen by the chaos run because its 429 bursts last 1 s (``burst_429_ms``), under
    KuCoin's 5 s tolerance — KuCoin's own reset is the rest of a 30 s window.
    """
    monkeypatch.setattr(harness, "Clock", WallClock)
    rig = Rig(redis_url, key_prefix, PROVISIONER_RATE_LIMIT="true")
    try:
        onboard_with_a_key(rig, "decl-1")
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        # the on-call's shell: an app built as cli/context.py builds one (wait_for_quota=True)
        oncall = build_app(rig.settings, transport=rig.transport, clock=rig.clock, wait_for_quota=True)
        try:
            report = recover(oncall, reason="test: Redis restarted without persistence", heard=[], heard_complete=True)
            assert report.caps_due_at_ms is not None
            rig.clock.advance_ms(report.caps_due_at_ms - int(rig.clock() * 1000) + 1)

            # a worker's ledger read meets KuCoin's 429: the Management window resets in 8 s
            rig.exchange.update_config({"faults": {"burst_429_ms": 8000}})
            set_faults(rig, "get_spot_ledger", **{"429": 1.0})
            worker = build_app(rig.settings, transport=rig.transport, clock=rig.clock)
            try:
                with pytest.raises(RateLimitedError):
                    worker.exchange.assets.ledger(currency="USDT")
            finally:
                worker.close()
            set_faults(rig, "get_spot_ledger", **{"429": 0.0})

            refused: str | None = None
            started = time.monotonic()
            try:
                declare_republished(oncall)
            except AuthConfigError as exc:
                refused = str(exc)
            waited = time.monotonic() - started
            assert refused is None and oncall.redis.get(oncall.keys.recovery_republished_at) is not None, (
                f"the declaration waited {waited:.1f} s for the Management pool's reset, then sent a read signed "
                f"before the wait; KuCoin refused it ({refused}) and nothing was declared: no recovered customer's "
                "funding is sent"
            )
        finally:
            oncall.close()
    finally:
        rig.close()
