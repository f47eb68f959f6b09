"""``provisioner dlq replay`` — the README's way to retry a blocked step once its cause is fixed — is lost when the
replayed message finds its customer busy: the retry is an argument of that message's own run
(``Reconciler.run(retry_blocked=_replayed(...))``), which returns ``busy`` before doing anything; the message is
acked, the dead letter is already gone, and the run that holds the customer (or the busy wake-up after it) is no
operator's retry. adv38 found this for ``provisioner customer retry`` and f6a2c04 fixed that command (it now waits
and fails loudly); the replay path kept the drop."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from sandbox import Exchange, SandboxConfig
from tests.adversarial44.test_a_replayed_dead_letter_pays_a_top_up_told_refused import Workers, wait_for
from tests.core.harness import events_for
from worker.store.lock import CustomerLock

pytestmark = pytest.mark.redis

CUSTOMER = "adv54-replay-busy"
LOW_SPECIAL_ACCOUNT = {"initial_balances": {"MAIN": {"USDT": "100"}, "TRADE": {}}}


def _blocked_for_want_of_money(workers: Workers, exchange: Exchange, customer: str) -> tuple[str, str, str]:
    """C approved with 250 USDT while the Special Account holds 100: the line blocked, its message dead-lettered.
    Then the Special Account is topped up (the cause fixed). Returns (ref, line key, the dead letter's id)."""
    app = workers.runtime.app
    ev = events_for(customer, funding=(("USDT", "250"),))
    publisher = workers.runtime.publisher()
    publisher.publish(ev["created"])
    publisher.publish(ev["kyc"])
    (letter,) = wait_for(lambda: workers.runtime.dead_letters().list(), "the blocked approval's dead letter")
    assert letter.kind == "blocked" and "account.available.amount" in letter.reason, letter
    ref = app.policy.naming.customer_ref(customer)
    line = f"{ev['kyc']['id']}#0"
    assert f"fund:{line}" in app.store.load(ref).blocked, "precondition: the funding line is blocked"
    exchange.credit(exchange.broker_uid, "USDT", "MAIN", Decimal("1000"))
    return ref, line, letter.message_id


def _paid(exchange: Exchange) -> list[dict[str, object]]:
    return [t for t in exchange.state_snapshot()["transfers"] if t["status"] == "SUCCESS"]


def test_a_replayed_dead_letter_retries_the_blocked_line(redis_url: str, key_prefix: str) -> None:
    """The control: the same replay, the customer idle, pays the line."""
    exchange = Exchange(SandboxConfig.from_dict(LOW_SPECIAL_ACCOUNT))
    with Workers(redis_url, key_prefix, exchange) as workers:
        ref, line, letter = _blocked_for_want_of_money(workers, exchange, CUSTOMER)
        assert workers.runtime.dead_letters().replay(letter)
        wait_for(lambda: _paid(exchange), "the replayed line's transfer")
        wait_for(lambda: f"fund:{line}" not in workers.runtime.app.store.load(ref).blocked, "the block lifted")


def test_a_replayed_dead_letter_that_finds_the_customer_busy_retries_nothing(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: the Special Account runs low (100 USDT in MAIN). Customer C is approved with a 250 USDT funding line:
    the transfer is refused ("account.available.amount"), the line is blocked (``fund:<line>``), the upstream is told
    ``provisioning.failed`` and the approval's message is dead-lettered (kind ``blocked``). Treasury tops the Special
    Account up; on-call follows the README ("retried by ``provisioner dlq replay`` ... once the cause is fixed") and
    runs ``provisioner dlq replay --all``. At that moment a worker holds C's lock for a few seconds — a scheduled
    wake-up of C (a key-age check, a rotation waiting for its successor's delivery polled every minute, a transfer
    of another line PROCESSING polled every few seconds, an ``ip_changed`` C just sent).

    What happens: the replayed message is stored as a duplicate and its reconcile finds C busy: ``Reconciler.run``
    returns ``busy`` (dirty flag, wake-up in a second) and the message is acked. ``retry_blocked`` existed only in
    that run. The holder's run and the wake-up after it plan with ``fund:<line>`` still blocked: ``Idle``. The dead
    letter was dropped by the replay, the block was reported long ago (no new dead letter, no new
    ``provisioning.failed``): ``dlq list`` is empty, the command printed "1 replayed", and the line stays blocked
    for good while the Special Account now has the money.

    Why it is wrong: README: a block is "retried by ``provisioner dlq replay`` or ``provisioner customer retry``
    once the cause is fixed"; the replay reports success and retries nothing, and the only trace left for the
    operator (the dead letter) is consumed. The ``CustomersBlocked`` alert keeps firing, so it is not silent — but
    the operator's documented remedy has been spent and the funding never happens until someone runs ``customer
    retry`` by hand.

    Suggested fix: make the retry a fact of the customer, not of one run — the replay (and ``customer retry``) sets
    a per-customer "retry requested" flag in Redis (signed, like the replay mark) that the next run holding the lock
    consumes (``_unblock`` + ``redecide_refused``), as the dirty flag is; or, on ``busy``, make a replayed message
    raise a retryable error so dramatiq delivers it again after a backoff instead of acking it.

    Likelihood in production: low-medium: it needs the replayed message and another run of the same customer to
    overlap (a run lasts a few exchange calls; busy customers are the ones with polls and waits running); impact: a
    customer's funding (or key) left blocked after the operator fixed the cause.
    """
    exchange = Exchange(SandboxConfig.from_dict(LOW_SPECIAL_ACCOUNT))
    with Workers(redis_url, key_prefix, exchange) as workers:
        app = workers.runtime.app
        dlq = workers.runtime.dead_letters()
        ref, line, letter = _blocked_for_want_of_money(workers, exchange, CUSTOMER)
        holder = CustomerLock(app.redis, app.keys, ref, ttl_ms=3_000)
        wait_for(holder.acquire, "a worker's run holding the customer")  # a wake-up of C, running for a moment
        assert dlq.replay(letter), "provisioner dlq replay: replayed"
        wait_for(lambda: not app.redis.zcard(app.keys.handoff("events")), "the replayed message worked")
        holder.release()
        time.sleep(3.0)  # the busy wake-up and any scheduled run of C come and go

        record = app.store.load(ref)
        assert dlq.list() == [], "the replay consumed the dead letter"
        assert f"fund:{line}" not in record.blocked and _paid(exchange), (
            f"the operator fixed the cause and replayed the dead letter ('replayed'), but the replay found the "
            f"customer busy and retried nothing: {line} is still blocked ({record.blocked[f'fund:{line}'].reason}), "
            "nothing was paid, and no dead letter is left to replay"
        )
