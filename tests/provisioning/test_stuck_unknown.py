"""An exchange write whose outcome stays unknown attempt after attempt must reach an operator, never loop silently.

- The pending-intents index (``{prefix}:pending``, metric ``provisioner_intent_oldest_age_seconds``, alert
  ``UnknownOutcomesUnresolved`` above 600 s) counts from the moment the write was first recorded: a repeat that is
  unknown again restarts the settle delay, not the age.
- A 200000 answer whose ``data`` does not read as documented is counted as an error of its own kind
  (``provisioner_exchange_errors_total{kind="malformed"}``, in ``ExchangeErrorRate``), not as a success.
- A write settled by sending it again (Modify SubAccount API; a transfer re-sent under its clientOid where the
  exchange deduplicates) is bounded (``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS``): the key update is blocked for an
  operator (``CustomersBlocked``, a dead letter, ``provisioning.failed``), and an offboarding behind it goes on; a
  transfer stops being re-sent and the ledger decides.

Real Redis and the in-process simulator; the rig's fake clock jumps from wake-up to wake-up (no sleeping).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import CollectorRegistry

from handlers import steps
from handlers.records import IntentKind, TransferStatus
from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for
from worker.runtime import metrics_collector
from worker.runtime.metrics import Metrics
from worker.runtime.metrics_collector import RedisCollector

MODIFY = "/api/v1/broker/nd/account/update-apikey"
TRANSFER = "/api/v1/broker/nd/transfer"
ALERT_S = 600
"""``UnknownOutcomesUnresolved`` fires above this age (deploy/prometheus/alerts.yml)."""


def _now_ms(rig: Rig) -> int:
    return int(rig.clock() * 1000)


def _drive(rig: Rig, ref: str, *, for_ms: int, until_blocked: bool = False) -> int:
    """Run the customer at each of its wake-ups for ``for_ms`` of the rig's clock (or until a run raised a block,
    with ``until_blocked``). Returns how many runs were made."""
    end = _now_ms(rig) + for_ms
    runs = 0
    while _now_ms(rig) < end:
        runs += 1
        assert runs < 5_000, "the customer keeps being due at once"
        rig.app.due.cancel(ref)
        rig.run(ref)
        if until_blocked and rig.blocked:
            return runs
        wake = rig.app.due.next_due_ms(ref)
        assert wake is not None, f"nothing more is due for {ref}: {rig.reports[-1:]}"
        rig.clock.advance_ms(max(wake - _now_ms(rig), 0))
    return runs


def _onboarded(rig: Rig, customer: str) -> tuple[str, dict[str, dict[str, object]]]:
    ev = events_for(customer, funding=())
    (ref,) = rig.publish(ev["created"])
    rig.publish(ev["kyc"])
    rig.settle(ref)
    record = rig.record(ref)
    assert record.sub_account is not None and len(record.live_keys) == 1
    return ref, ev


def _modify_never_answers(rig: Rig) -> None:
    """Every Modify SubAccount API request is applied, its answer lost (time-out or dropped connection)."""
    rig.exchange.update_config({"faults": {"per_endpoint": {"modify_sub_account_api": {"drop": 1.0}}}})


def _oldest_pending_age_s(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> float:
    """``provisioner_intent_oldest_age_seconds`` as a scrape at the rig's moment reads it."""
    monkeypatch.setattr(metrics_collector, "time", SimpleNamespace(time=rig.clock))
    collector = RedisCollector(rig.settings, ["events"])
    family = next(f for f in collector.collect() if f.name == "provisioner_intent_oldest_age_seconds")
    return float(family.samples[0].value)


def test_an_intent_unknown_on_every_attempt_ages_past_the_alert_threshold(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whitelist update whose every Modify SubAccount API answer is lost: repeated after each settle delay, and
    the pending index keeps the moment it was first recorded, so the oldest intent's age grows past the alert's
    600 s (it stayed under the settle delay: every repeat started the age again)."""
    rig = Rig(redis_url, key_prefix)
    try:
        ref, ev = _onboarded(rig, "stuck-age")
        _modify_never_answers(rig)
        rig.publish(ev["ip"])
        first = _now_ms(rig)
        _drive(rig, ref, for_ms=15 * 60_000)

        modifies = rig.transport.seen.get(("POST", MODIFY), 0)
        assert modifies >= 5, f"the update was repeated {modifies} times only"
        record = rig.record(ref)
        assert record.pending is not None and record.pending.kind is IntentKind.UPDATE_KEY
        ((member, since),) = rig.app.redis.zrange(rig.app.keys.pending, 0, 0, withscores=True)
        assert member == ref
        assert int(since) == first, f"the index counts from {int(since) - first} ms after the first send"
        age = _oldest_pending_age_s(rig, monkeypatch)
        assert age > ALERT_S, f"the oldest intent is {age:.0f} s old after {modifies} sends over 15 min"
    finally:
        rig.close()


@dataclass
class TransferAnswersMalformed(httpx.BaseTransport):
    """Transfers applied by the exchange, answered 200000 with ``data`` of no documented shape."""

    inner: httpx.BaseTransport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path != TRANSFER:
            return response
        response.read()
        payload = json.loads(response.content)
        if payload.get("code") != "200000":
            return response
        body = json.dumps({"code": "200000", "data": {"orderId": None}}).encode()
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)


def test_a_write_answered_200000_with_malformed_data_counts_as_an_error(redis_url: str, key_prefix: str) -> None:
    """A transfer answered 200000 with ``data`` that is no transfer order: the call is counted as an error of kind
    ``malformed`` (so ``ExchangeErrorRate`` sees it), the write is an outcome unknown, settled from the ledger."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    rig = Rig(redis_url, key_prefix, observers=[metrics.observe_call], PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        rig.transport.inner = TransferAnswersMalformed(rig.transport.inner)
        ev = events_for("stuck-malformed", funding=(("USDT", "250"),))
        (ref,) = rig.publish(ev["created"])
        rig.publish(ev["kyc"])
        rig.settle(ref)

        journal = [e["action"] for e in rig.app.store.journal(ref)]
        assert "outcome_unknown" in journal, journal
        record = rig.record(ref)
        assert [t.status for t in record.transfers.values()] == [TransferStatus.COMMITTED]
        malformed = registry.get_sample_value(
            "provisioner_exchange_errors_total", {"endpoint": "transfer", "kind": "malformed"}
        )
        ok = registry.get_sample_value(
            "provisioner_exchange_requests_total", {"endpoint": "transfer", "status": "200", "code": "200000"}
        )
        assert malformed == 1.0, f"malformed transfer answers counted: {malformed}"
        assert ok == 1.0, "the request is still counted by its status and code"
    finally:
        rig.close()


def _blocked_update(rig: Rig, ref: str) -> tuple[str, str]:
    """Drive the stuck update until it is blocked; the key and the block's reason."""
    record = rig.record(ref)
    api_key = record.live_keys[0].api_key
    runs = _drive(rig, ref, for_ms=2 * 3_600_000, until_blocked=True)
    assert rig.blocked, f"no block after {runs} runs and {rig.transport.seen.get(('POST', MODIFY), 0)} sends"
    record = rig.record(ref)
    block = record.blocked.get(steps.update(api_key))
    assert block is not None, record.blocked
    return api_key, block.reason


def test_a_modify_unknown_past_the_bound_is_blocked_and_the_offboarding_goes_on(
    redis_url: str, key_prefix: str
) -> None:
    """Modify SubAccount API unknown on every attempt for longer than ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS``:
    the update is blocked for an operator (the intent kept with the block, the reason naming the write and for how
    long), counted by ``CustomersBlocked``, raised as a dead letter and told (``provisioning.failed``); the
    offboarding queued behind it revokes the key, and the customer closes."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS="3600")
    try:
        ref, ev = _onboarded(rig, "stuck-bound")
        _modify_never_answers(rig)
        rig.publish(ev["ip"])
        first = _now_ms(rig)
        api_key, reason = _blocked_update(rig, ref)

        elapsed = _now_ms(rig) - first
        assert 3_600_000 <= elapsed < 3_600_000 + 5 * 60_000, f"blocked after {elapsed} ms"
        assert "Modify SubAccount API" in reason and re.search(r"every send for 1 h \d+ min\b", reason), reason
        record = rig.record(ref)
        block = record.blocked[steps.update(api_key)]
        assert record.pending is None
        assert block.intent is not None and block.intent.kind is IntentKind.UPDATE_KEY
        assert block.intent.token == api_key
        assert rig.app.redis.zscore(rig.app.keys.blocked, ref) is not None, "CustomersBlocked does not count it"
        assert rig.app.redis.zscore(rig.app.keys.pending, ref) is None
        assert any(steps.update(api_key) in r for b in rig.blocked for r in b.reasons), rig.blocked
        failed = [e for e in rig.outbound() if e["type"] == "provisioning.failed"]
        assert [e["step"] for e in failed] == [steps.update(api_key)], failed

        sends = rig.transport.seen[("POST", MODIFY)]
        rig.publish(ev["offboard"])
        rig.settle(ref)
        record = rig.record(ref)
        live = [k["apiKey"] for k in rig.state()["apiKeys"] if k["deletedAt"] is None]
        assert record.closed_at_ms is not None and not live, (record.closed_at_ms, live)
        assert rig.transport.seen[("POST", MODIFY)] == sends, "the blocked update was sent again"
    finally:
        rig.close()


def test_a_blocked_modify_is_sent_again_by_an_operators_retry(redis_url: str, key_prefix: str) -> None:
    """Once the exchange answers again, the operator's retry (``provisioner customer retry``, a replayed dead
    letter) sends the update again, as for any block: nothing is left to decide (the write replaces the whole
    access), so the block is not one that only a verdict lifts."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS="3600")
    try:
        ref, ev = _onboarded(rig, "stuck-retry")
        _modify_never_answers(rig)
        rig.publish(ev["ip"])
        api_key, _ = _blocked_update(rig, ref)
        assert not rig.record(ref).blocked[steps.update(api_key)].manual

        rig.exchange.update_config({"faults": {"per_endpoint": {"modify_sub_account_api": None}}})
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)
        record = rig.record(ref)
        assert not record.blocked and record.pending is None, (record.blocked, record.pending)
        assert record.live_keys[0].ip_whitelist == ("198.51.101.7", "198.51.101.8")
        assert "api_key.updated" in [e["type"] for e in rig.outbound()]
    finally:
        rig.close()


def test_a_transfer_resent_unknown_past_the_bound_is_settled_from_the_ledger(redis_url: str, key_prefix: str) -> None:
    """Where the exchange deduplicates a clientOid, a lost transfer is settled by sending it again; a send whose
    every answer is lost is re-sent only until ``PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS``, then the Special
    Account's ledger decides (here: it lists the first send, so the line is completed, paid once)."""
    config = SandboxConfig.from_dict({"faults": {"per_endpoint": {"transfer": {"drop": 1.0}}}})
    rig = Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",
        PROVISIONER_UNKNOWN_OUTCOME_MAX_SECONDS="3600",
    )
    try:
        ev = events_for("stuck-resend", funding=(("USDT", "250"),))
        (ref,) = rig.publish(ev["created"])
        rig.publish(ev["kyc"])
        first = _now_ms(rig)
        rig.settle(ref, max_rounds=400, horizon_ms=3 * 3_600_000)

        record = rig.record(ref)
        sends = rig.transport.seen.get(("POST", TRANSFER), 0)
        assert record.pending is None, f"still pending after {sends} sends: {record.pending}"
        assert [t.status for t in record.transfers.values()] == [TransferStatus.COMMITTED], record.transfers
        assert _now_ms(rig) - first < 3_600_000 + 10 * 60_000
        moved = [t for t in rig.state()["transfers"] if t["direction"] == "OUT" and t["status"] == "SUCCESS"]
        assert len(moved) == 1, moved
        assert "funding.completed" in [e["type"] for e in rig.outbound()]
    finally:
        rig.close()
