"""``exchange_traces`` (``worker/bootstrap.py``) — asked whenever Redis holds no state of ours: a new deployment's
first write, a new host after a loss (``provisioner recover``'s ``diagnose``) — calls Get Broker Info without
``begin``/``end`` (``Broker.info``: "the spec marks them required but they do not affect the answer"). The simulator
offers KuCoin enforcing them as a switch (``broker_info_requires_dates``; docs/kucoin-api.md §6.5 and §7.4:
"SPEC requires begin/end/tradeType; enforcement unknown"), and under it the call is refused (400100 "begin is
required") — a ``PermanentError`` that neither ``StateGuard._create`` nor ``diagnose`` expects."""

from __future__ import annotations

import pytest

from sandbox import Exchange, SandboxConfig
from tests.core.harness import Clock, CrashingTransport, events_for, settings_for
from worker.bootstrap import build_app
from worker.exchange import PermanentError
from worker.intake import Accepted

pytestmark = pytest.mark.redis


def test_a_new_deployment_provisions_its_first_customer_where_broker_info_requires_its_dates(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: a brand-new deployment (empty Redis, no state mirror on the host) against an exchange that enforces
    what KuCoin's spec says of Get Broker Info — ``begin``, ``end`` and ``tradeType`` required (the simulator's
    ``broker_info_requires_dates``; docs/sandbox.md lists it among the undocumented behaviours, each a switch the
    worker must be correct under). The upstream publishes its first customer.

    What happens: storing the first event (``Intake.accept`` → ``CustomerStore.ingest``, a guarded script) needs the
    state epoch; Redis holds none, so ``StateGuard`` asks the exchange for traces of an earlier state
    (``exchange_traces``): ``broker.info()`` without dates → 400100 "begin is required" → ``PermanentError``, which
    propagates out of intake. Every event of every customer does the same, for good: nothing is stored, nothing is
    created, and each event ends as a dead letter whose reason names Get Broker Info, not a setting anyone can
    change. ``provisioner recover`` on a new host after a loss fails the
    same way (``diagnose`` lets the ``PermanentError`` through), and so does ``provisioner worker --check-state``.

    Why it is wrong: the worker must be correct under every undocumented behaviour the simulator offers (README
    "The simulator"; docs/sandbox.md); here the behaviour is the one KuCoin's own spec documents, and a worker that
    sent the dates would work under both. The failure is total: no customer of the deployment is ever
    provisioned, and after a loss the recovery that would rebuild it cannot run.

    Suggested fix: always send ``begin``/``end`` (e.g. today's date for both, ``YYYYMMDD``) with ``tradeType`` in
    ``Broker.info`` — harmless where KuCoin ignores them; and have ``exchange_traces`` turn an exchange refusal into
    a ``StateLost`` (kind ``traces``) that says which call failed, rather than an uncaught error.

    Likelihood: medium — KuCoin's spec marks the parameters required and nothing says the gateway does not enforce
    them; where it does, every new deployment and every recovery on a new host fails on its first write.
    """
    clock = Clock()
    exchange = Exchange(SandboxConfig(broker_info_requires_dates=True), clock=clock, sleep=lambda s: None)
    app = build_app(settings_for(redis_url, key_prefix), transport=CrashingTransport(exchange.transport()), clock=clock)
    try:
        ev = events_for("first-1", funding=(("USDT", "250"),))
        failure: str | None = None
        try:
            refs = []
            for event in (ev["created"], ev["kyc"]):
                outcome = app.intake.accept(event)
                assert isinstance(outcome, Accepted), outcome
                refs.append(outcome.ref)
            app.reconciler.run(refs[0])
        except PermanentError as exc:
            failure = str(exc)
        assert failure is None and exchange.state_snapshot()["subAccounts"], (
            "the new deployment's first customer is not provisioned: its event could not even be stored: "
            f"{failure!r} (Get Broker Info asked without the begin/end KuCoin's spec requires)"
        )
    finally:
        for key in app.redis.scan_iter(f"{key_prefix}:*", count=1000):
            app.redis.delete(key)
        app.close()
