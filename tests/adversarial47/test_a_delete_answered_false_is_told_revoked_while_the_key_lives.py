"""Delete SubAccount API answered ``{"code":"200000","data":false}``: the worker discards the boolean, records the
rotated-out key revoked, forgets its secret and tells the upstream ``api_key.revoked`` while the key stays live.

Scenario: KuCoin documents Delete SubAccount API's answer as a boolean ``data`` (docs/kucoin-api.md §6.11:
"Response ``{"code":"200000","data":true}``"; §6.17: data ``true``; SPEC types it ``boolean``). A boolean result admits
``false``, and what ``false`` means — "nothing to delete" or "not deleted" (a key locked by a concurrent change, a
delete that affected no row on a lagging node) — is documented nowhere (the sandbox assumes an error instead, an
``[assumed]`` row of docs/sandbox.md: "Delete of an unknown key fails (not idempotent)"). Here the exchange answers
``data: false`` and deletes nothing. The customer asks for a key rotation (``customer.key_rotation_requested``,
e.g. because its key leaked).

What happens: the new key is issued and delivered; after the grace ``revoke_api_key`` calls
``api_keys.delete`` — which parses the boolean (``models.boolean``) and returns ``False`` — ignores the value and
``_revoked``: the record marks the old key revoked, drops its sealed secret, and the outbound stream tells the
upstream ``api_key.revoked``. Nothing ever lists the keys again while the customer lives (``list_keys`` runs only
before a close), so the old key stays live with its permissions and whitelist for good. ``resolve_api_key`` does
the same with an orphan key after a lost issue: it counts it deleted, tells it revoked and re-issues, leaving a
live key nobody holds the secret of.

Why it is wrong: "the upstream told something false" (a key it may have asked to rotate because it leaked is still
usable) and the worker's own record disagrees with the exchange, silently. ``ApiKeys.delete`` returns "the
exchange's boolean" precisely so callers can look at it; neither caller does.

Suggested fix: treat ``data: false`` (and anything but ``true``) as "not proven": in ``revoke_api_key`` keep the
intent and go through ``resolve_revoke`` (list: gone → revoked; still listed → delete again / block after N), and in
``resolve_api_key`` put such an orphan into ``orphans_unsure``. Cheapest: make ``ApiKeys.delete`` raise
``OutcomeUnknownError`` when the boolean is not ``true``, so every caller already handles it.

Likelihood: low (KuCoin's example answers ``true``; a ``false`` needs an undocumented refusal path), but the fix is a
one-line check and the failure is silent and security-relevant (a rotated-out, possibly leaked key stays live).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from handlers import steps
from tests.adversarial.helpers import onboard_with_a_key, outbound_of
from tests.core.harness import Rig, events_for

KEYS = "/api/v1/broker/nd/account/apikey"


@dataclass
class DeleteAnswersFalse(httpx.BaseTransport):
    """Delete SubAccount API answers HTTP 200 ``{"code":"200000","data":false}`` and deletes nothing; every other
    request goes to ``inner``."""

    inner: httpx.BaseTransport
    asked: list[str] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and request.url.path == KEYS:
            self.asked.append(request.url.params.get("apiKey", ""))
            return httpx.Response(200, json={"code": "200000", "data": False}, request=request)
        return self.inner.handle_request(request)


def test_a_delete_answered_false_is_told_revoked_while_the_key_lives(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        ref, _ = onboard_with_a_key(rig, "adv47-false")
        old = rig.record(ref).live_keys[0].api_key
        fake = DeleteAnswersFalse(rig.transport.inner)
        rig.transport.inner = fake
        rig.publish(events_for("adv47-false")["rotate"])
        rig.settle(ref, horizon_ms=24 * 3_600_000)

        assert fake.asked == [old], "the rotation asked the exchange to delete the old key"
        live = {k["apiKey"] for k in rig.state()["apiKeys"] if k["deletedAt"] is None}
        assert old in live, "the exchange did not delete it (it said false)"
        told = {e["api_key"] for e in outbound_of(rig, "api_key.revoked")}
        recorded = next(k for k in rig.record(ref).keys if k.api_key == old)
        assert old not in told, f"the upstream is told {old} revoked, yet the exchange lists it live"
        assert recorded.live, "our record says revoked (and its secret is dropped) while the key is live"
        block = rig.record(ref).blocked.get(steps.revoke(old))
        assert block is not None and "answered false" in block.reason, "an operator is asked, not left to guess"
    finally:
        rig.close()
