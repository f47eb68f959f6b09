"""Modify SubAccount API answered ``{"code":"200000","data":false}`` (nothing applied) is recorded as applied and
told ``api_key.updated``: the key keeps its old IP whitelist on the exchange while the upstream and our record say
it was narrowed to the new one.

Scenario: a customer's IP whitelist changes (``customer.ip_changed``: say an office address was given up, or an
address found compromised). The worker calls Modify SubAccount API (``POST /api/v1/broker/nd/account/update-apikey``).
The exchange answers ``code 200000`` with ``data: false`` and changes nothing — the same undocumented ``false`` that
8e20111 (adv47) judged plausible for the sibling Delete SubAccount API and now treats as a refusal to check by
listing (docs/kucoin-api.md §6.10 only says the answer is "the 6.9 item shape": an object).

What happens: since 15c76be (adv48) ``ApiKeys.modify`` parses the answer with ``models.modified``, which "never
refuses it": ``false`` (like ``null``, a string, anything) becomes an empty ``ApiKeyModified``. ``update_api_key``
settles the UPDATE_KEY intent, writes the new whitelist into the record and tells the upstream ``api_key.updated``
with it. Nothing lists the key afterwards; the exchange still lets the key trade from the old addresses.

Why it is wrong: tolerance meant for a *well-formed object missing a field nobody reads* now also hides an answer
that is not a key at all, the very shape the delete path treats as "not proven". The upstream is told something
false about access to a trading key (its whitelist), and our record disagrees with the exchange silently — the
class of failure 8e20111 fixed for deletes, re-opened for modifies.

Suggested fix: in ``modified``, tolerate missing or malformed *fields* of an object, but treat a ``data`` that is
not an object (``false``; arguably ``null``) as not proven: raise ``OutcomeUnknownError`` so the intent is resolved
— better by listing the key (Get SubAccount API gives permissions and masked IPs to compare with the request) than
by repeating the write — and block for an operator after a bounded number of such answers.

Likelihood: low (KuCoin's documented answer is the key object); the failure is silent and security-relevant (a
whitelist the upstream believes narrowed is not), and the check is a few lines.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import httpx

from tests.adversarial.helpers import outbound_of
from tests.core.harness import Rig, events_for

MODIFY = "/api/v1/broker/nd/account/update-apikey"
NEW_WHITELIST = ["198.51.101.7", "198.51.101.8"]


@dataclass
class ModifyAnswersFalse(httpx.BaseTransport):
    """Modify SubAccount API answers HTTP 200 ``{"code":"200000","data":false}`` and changes nothing; every other
    request goes to ``inner``."""

    inner: httpx.BaseTransport
    asked: int = 0
    paths: list[str] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == MODIFY:
            self.asked += 1
            return httpx.Response(200, json={"code": "200000", "data": False}, request=request)
        return self.inner.handle_request(request)


def test_a_modify_answered_false_is_told_updated_while_the_key_keeps_its_old_whitelist(
    redis_url: str, key_prefix: str
) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("adv50-modify-false", funding=())
        (ref,) = rig.publish(ev["created"])
        rig.settle(ref)
        rig.publish(ev["kyc"])
        rig.settle(ref)
        (key,) = [k for k in rig.state()["apiKeys"] if k["deletedAt"] is None]
        old_whitelist = sorted(key["ipWhitelist"])
        assert old_whitelist != sorted(NEW_WHITELIST)

        fake = ModifyAnswersFalse(rig.transport.inner)
        rig.transport.inner = fake
        rig.publish(ev["ip"])
        with contextlib.suppress(AssertionError):  # still waiting (a doubt, a block): not told anything false
            rig.settle(ref, max_rounds=30, horizon_ms=24 * 3_600_000)
        assert fake.asked >= 1, "the worker asked the exchange to modify the key"

        (live,) = [k for k in rig.state()["apiKeys"] if k["deletedAt"] is None]
        assert sorted(live["ipWhitelist"]) == old_whitelist, "the exchange changed nothing (it said false)"
        told = [e for e in outbound_of(rig, "api_key.updated") if e.get("api_key") == live["apiKey"]]
        recorded = next(k for k in rig.record(ref).keys if k.api_key == live["apiKey"])
        assert not told, f"the upstream is told the key's whitelist is {NEW_WHITELIST}, yet it is {old_whitelist}"
        assert sorted(recorded.ip_whitelist) == old_whitelist, (
            f"our record says {sorted(recorded.ip_whitelist)} while the exchange holds {old_whitelist}"
        )
    finally:
        rig.close()
