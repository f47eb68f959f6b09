"""A Modify SubAccount API answer that lacks a field the worker never reads (``createdAt``) is taken as "outcome
unknown" every time: the applied update is repeated for ever, never told, never blocked, and an offboarding behind
it never revokes the customer's key nor moves the money back.

Scenario: a customer's IP whitelist changes (``customer.ip_changed``). KuCoin applies the Modify SubAccount API
(``POST /api/v1/broker/nd/account/update-apikey``) and answers ``code 200000`` with the key — but without
``createdAt`` (a modification has no creation moment to report; an answer of another version may carry
``updatedAt`` instead, or leave it out). docs/kucoin-api.md §6.10 only says "Response: the 6.9 item shape (masked
IPs)", and 373beac already judged "a field missing from the answer" of the sibling Add SubAccount API plausible
enough to accept the answer on its two fields that matter.

What happens: ``ApiKeys.modify`` validates the answer as a full ``ApiKey`` (``created_at: int`` required), the
HTTP layer turns the ``ValidationError`` into ``OutcomeUnknownError`` for a write, the UPDATE_KEY intent stays,
and its resolution is to repeat the write ("a whole-replacement write: repeating it is the resolution") — which is
answered the same way. Nothing counts the repeats: no block, no ``provisioning.failed``, no ``api_key.updated``,
a weight-3 management call every settle delay for ever. The customer's later ``customer.offboarded`` waits behind
the intent ("waiting for update_key to settle"): the live trading key of an offboarded customer is never revoked
and its balances are never moved back.

Why it is wrong: the write took effect and the worker holds every fact it needs (what it asked; the answer is never
read: ``update_api_key`` discards it); a shape check on fields nobody uses turns one benign answer into a stall
without end, the same class 373beac fixed for Add SubAccount API (there it also threw away a secret). A stall must
at least reach an operator (README: blocked steps are told).

Suggested fix: parse the modify answer leniently (like ``ApiKeyCreated``: only what is used, here nothing beyond
``code 200000``; or ``apiKey`` alone, checked equal to the key asked), or confirm a doubtful update by listing the
key (Get SubAccount API shows permissions and masked IPs) instead of repeating the write; and bound the repeats of
any "repeat is the resolution" intent (a block told upstream after N).

Likelihood: low to medium — it needs KuCoin's modify answer to differ from its documented example in one field the
worker does not use; when it does, it does so for every customer and every update, and every offboarding after an
IP change or a permission change stalls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

from tests.core.harness import Rig, events_for

MODIFY = "/api/v1/broker/nd/account/update-apikey"


@dataclass
class ModifyAnswersWithoutCreatedAt(httpx.BaseTransport):
    """Modify SubAccount API applied by the exchange, its answer without ``createdAt``; the rest untouched."""

    inner: httpx.BaseTransport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path != MODIFY:
            return response
        response.read()
        payload = json.loads(response.content)
        if payload.get("code") != "200000" or not isinstance(payload.get("data"), dict):
            return response
        payload["data"].pop("createdAt", None)
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)


def settle_or_stall(rig: Rig, ref: str) -> str | None:
    """Settle the customer; the reason it is still waiting after a day of wake-ups, if it never settles."""
    try:
        rig.settle(ref, max_rounds=30, horizon_ms=24 * 3_600_000)
    except AssertionError as stalled:
        return str(stalled)[:300]
    return None


def test_a_modify_answer_without_created_at_stalls_the_update_and_the_offboarding(
    redis_url: str, key_prefix: str
) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("adv48-modify", funding=())
        (ref,) = rig.publish(ev["created"])
        rig.settle(ref)
        rig.publish(ev["kyc"])
        rig.settle(ref)
        rig.transport.inner = ModifyAnswersWithoutCreatedAt(rig.transport.inner)

        rig.publish(ev["ip"])
        stalled_update = settle_or_stall(rig, ref)
        live = [k for k in rig.state()["apiKeys"] if k["deletedAt"] is None]
        assert len(live) == 1 and sorted(live[0]["ipWhitelist"]) == ["198.51.101.7", "198.51.101.8"], live
        rig.publish(ev["offboard"])
        stalled_offboarding = settle_or_stall(rig, ref)

        record = rig.record(ref)
        told = [e["type"] for e in rig.outbound()]
        modifies = rig.transport.seen.get(("POST", MODIFY), 0)
        live = [k["apiKey"] for k in rig.state()["apiKeys"] if k["deletedAt"] is None]
        assert stalled_update is None and "api_key.updated" in told, (
            f"the applied update never settles ({modifies} modify calls): {stalled_update}; told {told}"
        )
        assert stalled_offboarding is None and record.closed_at_ms is not None and not live, (
            f"the offboarded customer is not closed, key(s) {live} live: {stalled_offboarding}"
        )
    finally:
        rig.close()
