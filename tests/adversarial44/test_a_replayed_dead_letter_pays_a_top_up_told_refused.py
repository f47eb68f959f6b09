"""A top-up the worker refused (``event.refused`` told to the upstream, the message dead-lettered) is paid when an
operator replays the dead letters once the cause has passed — after the upstream, as the contract asks, re-sent the
top-up as a new event, which was paid too.

Scenario: a rollout adds KCS to ``PROVISIONER_CURRENCIES``. The HTTP API (or ``provisioner publish``) already runs
with it and admits customer C's top-up ``E1`` of 50 KCS (202: the API checks with its own settings); the workers
do not have KCS yet, so ``Intake.check`` refuses it in the worker ("unknown currency"), reports ``event.refused``
for ``E1`` on the outbound stream and dead-letters the message (kind ``invalid_event``, ``DEAD_AT_ONCE``). The
upstream reads ``event.refused``; docs/integration.md tells it a refused event is not retried unchanged but fixed
and "sent as a new event" (a re-send of ``E1``'s id would be answered ``duplicate`` by the API's admission index
anyway). Once the workers know KCS it publishes the same top-up as ``E2``: 50 KCS, paid. Later on-call clears the
dead letters the way the README's incident walkthrough does, ``provisioner dlq replay --all`` (``dlq list`` shows the
letter, its cause now fixed).

What happens: ``DeadLetters.replay`` re-enqueues ``E1``'s message whatever its kind; intake now accepts it (KCS is
configured), stores it, and the reconcile pays its line: 100 KCS moved for one intended top-up of 50, and the
upstream hears ``funding.completed`` for ``E1#0`` — a line of an event it was told was refused, and never hears a
verdict that takes that refusal back.

Why it is wrong: ``event.refused`` is final for the upstream (docs/integration.md: "Do not retry a ... 422 unchanged:
it will be refused again", "fix it and send it as a new event"); README: "a replay ... is safe to run twice" and
every funding line ends with exactly one verdict. Here a refused event takes effect later: a funding line is paid
that should not be (the upstream already re-sent it), and the upstream is told ``funding.completed`` for money it
had booked as refused. Nothing flags it: no double is searched (two distinct lines), the per-customer cap allows
both.

Suggested fix: a refusal the upstream was told is final for that event id. Record it where intake looks (e.g. the
refused event's id and content digest in the customer's refusal index, written by the same script that reports
``event.refused``) and refuse a later copy of the same id the same way — the replayed message, or a copy the hand-off
re-sends — with the same deterministic ``event.refused`` id; or make ``dlq replay`` skip dead letters of kind
``invalid_event`` whose refusal was reported (say so in ``dlq show``), leaving ``purge`` as their only action.

Likelihood in production: needs the worker to refuse what the API admitted — settings that differ between the API and
the workers during a rollout (currencies, ``PROVISIONER_MAX_KYC_PHOTO_BYTES`` on an approval that carries funding),
or the worker's clock — and then a bulk ``dlq replay --all``, which is the README's own recovery step after an
exchange outage. Rollouts are routine, bulk replays too; the double payment is bounded by the per-customer cap and
silent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import dramatiq
from prometheus_client import CollectorRegistry

from sandbox import Exchange, SandboxConfig
from tests.core.harness import events_for, settings_for
from tests.signed import signed_message
from worker.runtime.broker import Runtime, build_runtime

WITHOUT_KCS = {
    "PROVISIONER_CURRENCIES": "USDT,USDC,BTC,ETH",
    "PROVISIONER_FUNDING_CAP_PER_CUSTOMER": "USDT=1000,BTC=1,ETH=5,USDC=1000",
    "PROVISIONER_FUNDING_CAP_PER_DAY": "USDT=100000,BTC=10,ETH=50,USDC=1000",
}
WITH_KCS = {
    "PROVISIONER_CURRENCIES": "USDT,USDC,BTC,ETH,KCS",
    "PROVISIONER_FUNDING_CAP_PER_CUSTOMER": "USDT=1000,BTC=1,ETH=5,USDC=1000,KCS=100",
    "PROVISIONER_FUNDING_CAP_PER_DAY": "USDT=100000,BTC=10,ETH=50,USDC=1000,KCS=1000",
}
FAST = {
    "PROVISIONER_MIN_BACKOFF_MS": "100",
    "PROVISIONER_MAX_BACKOFF_MS": "400",
    "PROVISIONER_MAX_RETRIES": "3",
    "PROVISIONER_UNKNOWN_OUTCOME_SETTLE_MS": "0",
    "PROVISIONER_LISTING_LAG_MS": "0",
    "PROVISIONER_LEDGER_LAG_MS": "0",
}


class Workers:
    """A real dramatiq worker (threads in this process) on the test's prefix, talking to a shared simulator: one
    rollout of the workers' settings."""

    def __init__(self, redis_url: str, key_prefix: str, exchange: Exchange, **settings: str) -> None:
        self.settings = settings_for(redis_url, key_prefix, **{**FAST, **settings})
        self.runtime: Runtime = build_runtime(
            self.settings, transport=exchange.transport(), registry=CollectorRegistry(), scheduler_interval_s=0.05
        )
        self.runtime.app.state.establish(ask_exchange=False)
        self.worker = dramatiq.Worker(self.runtime.broker, worker_threads=2, worker_timeout=50)

    def __enter__(self) -> Workers:
        self.worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop(timeout=10_000)
        self.runtime.close()

    def outbound(self) -> list[dict[str, Any]]:
        import json

        app = self.runtime.app
        return [json.loads(f["event"]) for _, f in app.redis.xrange(app.keys.outbound)]


def wait_for(condition: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def top_up(event_id: str, amount: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "customer.funding_requested",
        "customer_id": "adv44-replay",
        "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {"funding": [{"currency": "KCS", "amount": amount}]},
    }


def kcs_paid(exchange: Exchange) -> list[dict[str, Any]]:
    return [
        t
        for t in exchange.state_snapshot()["transfers"]
        if t["direction"] == "OUT" and t["currency"] == "KCS" and t["status"] != "FAILURE"
    ]


def test_a_replayed_dead_letter_pays_a_top_up_the_upstream_was_told_refused(redis_url: str, key_prefix: str) -> None:
    exchange = Exchange(SandboxConfig())
    ev = events_for("adv44-replay", funding=())

    # the workers before the rollout: KCS unknown to them; the API already admits KCS lines (it signs what it admits)
    with Workers(redis_url, key_prefix, exchange, **WITHOUT_KCS) as old:
        publisher = old.runtime.publisher()
        publisher.publish(ev["created"])
        publisher.publish(ev["kyc"])
        wait_for(lambda: [k for k in exchange.state_snapshot()["apiKeys"] if k["deletedAt"] is None], "a key")
        actor = old.runtime.actors.handle_event
        old.runtime.broker.enqueue(signed_message(actor, top_up("adv44-e1", "50"), old.runtime.app.proofs))
        dlq = old.runtime.dead_letters()
        (letter,) = wait_for(lambda: dlq.list(), "the refused top-up's dead letter")
        assert letter.kind == "invalid_event" and "KCS" in letter.reason, letter
        refused = [e for e in old.outbound() if e["type"] == "event.refused" and e.get("event_id") == "adv44-e1"]
        assert refused, "the upstream is told that E1 was refused"
        assert kcs_paid(exchange) == []

    # the rollout is done: the workers know KCS. The upstream re-sends the refused top-up as a new event (the
    # contract: a refused event is fixed and sent as a new one), then on-call replays the dead letters
    with Workers(redis_url, key_prefix, exchange, **WITH_KCS) as new:
        new.runtime.publisher().publish(top_up("adv44-e2", "50"))
        wait_for(lambda: kcs_paid(exchange), "E2's transfer")
        dlq = new.runtime.dead_letters()
        for letter in dlq.list():
            dlq.replay(letter.message_id)
        time.sleep(2.0)  # the replayed message is worked (or refused) meanwhile
        wait_for(lambda: not new.runtime.app.redis.llen(f"{new.runtime.broker.namespace}:events"), "queue drained")
        time.sleep(1.0)

        completed = [e["key"] for e in new.outbound() if e["type"] == "funding.completed"]
        paid = sum((Decimal(t["amount"]) for t in kcs_paid(exchange)), Decimal(0))
        assert "adv44-e1#0" not in completed, f"E1 was told event.refused, then its line funding.completed: {completed}"
        assert paid == 50, f"{paid} KCS moved for one top-up of 50 the upstream had to re-send after E1's refusal"
