"""``provisioner customer retry`` that finds the customer busy prints "it will pick up the retry" and exits 0, but
nothing carries the retry to the run holding the customer: ``retry_blocked`` is an argument of the CLI's own run
(``Reconciler.run``), which returned ``busy`` before doing anything. The worker's runs are not operator retries, so
neither the blocks nor the cap refusals the operator fixed are decided again."""

from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner

from cli.main import main
from sandbox import start_server
from tests.adversarial.helpers import outbound_of, paid_to
from tests.core.harness import Rig, events_for, settings_for
from worker.bootstrap import build_app
from worker.store.lock import CustomerLock

pytestmark = pytest.mark.redis

RAISED = "USDT=2000,BTC=1,ETH=5,USDC=1000,KCS=100"


def test_a_retry_that_finds_the_customer_busy_says_it_will_be_picked_up_and_is_dropped(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: the README's incident 1, step by step. Customer ``busy-7`` asks for 1500 USDT; the per-customer cap
    is 1000: the line is refused (``funding.refused``). Risk agrees; on-call raises the cap where the workers read
    it (and restarts them) and in their shell, then runs ``provisioner customer retry busy-7`` — at a moment a
    worker is reconciling the customer (its lock held: a KYC poll, a key-age check, an ``ip_changed`` the customer
    just sent, or the very wake-up the command schedules first, claimed by a scheduler tick).

    What happens: the command's run finds the lock taken, returns ``busy``; the command prints "the customer is
    being reconciled right now; it will pick up the retry" and "busy: done (steps: none)", exit status 0. The
    worker's runs then go idle: ``retry_blocked`` was the command's own argument, the workers' runs never take
    back a cap refusal (``redecide_refused`` runs only on an operator's retry). The line stays refused, nothing is
    sent, no alert fires (a refusal is not a block), and the operator was told the retry would happen.

    Why it is wrong: the operator command promises an effect it does not have (README: "`customer retry`
    re-decides refused lines under the settings it runs with and performs what they now allow"); for a blocked
    step the block and its alert stay, but for a cap refusal — the documented incident — nothing is left to show
    that the retry never happened, short of reading ``customer show`` again.

    Suggested fix: on ``busy``, wait for the lock and run again (a few seconds' loop), or exit non-zero with "busy:
    nothing was retried, run it again"; or record the retry request in Redis (a per-customer flag the next run
    takes, as the dirty flag) so the holder performs ``_unblock`` / ``redecide_refused`` itself.

    Likelihood: low-medium: a customer is busy for a run's duration (a few exchange calls); the command's own
    ``due.schedule(ref, now)`` before its run invites a worker to take the customer at the same moment. Impact: a
    customer's funding silently left refused after the operator believed it fixed.
    """
    rig = Rig(redis_url, key_prefix)
    rig.clock.now = time.time()  # the command signs with the real clock: the exchange's must agree
    server = start_server(rig.exchange)
    try:
        ev = events_for("busy-7", funding=(("USDT", "1500"),))
        ref = rig.publish(ev["created"], ev["kyc"])[0]
        rig.settle(ref)
        line = f"{ev['kyc']['id']}#0"
        assert rig.record(ref).transfers[line].status.value == "refused", "precondition: refused by the cap"

        # the workers restarted with the raised cap
        settings = settings_for(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_CUSTOMER=RAISED)
        workers = build_app(settings, transport=rig.transport, clock=rig.clock)
        try:
            holder = CustomerLock(workers.redis, workers.keys, ref, ttl_ms=10_000)
            assert holder.acquire(), "precondition: a worker's run holds the customer"
            env = {
                "REDIS_URL": redis_url,
                "PROVISIONER_REDIS_PREFIX": key_prefix,
                "PROVISIONER_STATE_DIR": rig.settings.state_dir or "",
                "KUCOIN_BROKER_BASE_URL": server.url,
                "KUCOIN_SPOT_BASE_URL": server.url,
                "PROVISIONER_FUNDING_CAP_PER_CUSTOMER": RAISED,
            }
            result = CliRunner().invoke(
                main, ["customer", "retry", "busy-7", "--wait", "1"], env=env, catch_exceptions=False
            )
            # held for all of the wait: it says nothing was retried, and fails
            assert result.exit_code == 1 and "nothing was retried" in result.stderr, (result.stdout, result.stderr)
            assert workers.store.load(ref).transfers[line].status.value == "refused"

            # held for part of the wait: the command waits for the worker's run to end, then retries
            timer = threading.Timer(1.0, holder.release)  # the worker's run ends
            timer.start()
            result = CliRunner().invoke(
                main, ["customer", "retry", "busy-7", "--wait", "30"], env=env, catch_exceptions=False
            )
            timer.join()
            assert result.exit_code == 0, (result.stdout, result.stderr)
            record = workers.store.load(ref)
            status = record.transfers[line].status.value
            uid = record.sub_account.uid
            heard = [e["type"] for e in outbound_of(workers, "funding.refused")]
            assert status != "refused", (
                f"the retry ran; the line is still {status} under the raised cap "
                f"(paid {paid_to(rig, uid)}, the upstream heard {heard})"
            )
        finally:
            workers.close()
    finally:
        server.close()
        rig.close()
