"""A call's scope (customer, lane, send deadline, pre-taken weight) travels with the call to the gate and the wire:
pure, through an in-memory transport and a gate that records what it is handed."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from handlers import commands as c
from worker.exchange import ExchangeClient, RetryableError
from worker.exchange.endpoints import ENDPOINTS, Endpoint
from worker.exchange.http import KucoinHttp, RateLimitInfo
from worker.exchange.scope import NO_SCOPE, CallScope, Preadmission
from worker.provisioning.reconciler import step_scope
from worker.settings import DEV_DEFAULT_SECRETS, KucoinCredentials

D = DEV_DEFAULT_SECRETS
MANAGEMENT = KucoinCredentials(
    api_key=D["KUCOIN_API_KEY"],
    api_secret=D["KUCOIN_API_SECRET"],
    api_passphrase=D["KUCOIN_API_PASSPHRASE"],
    partner=D["KUCOIN_BROKER_PARTNER"],
    broker_key=D["KUCOIN_BROKER_KEY"],
    broker_name=D["KUCOIN_BROKER_NAME"],
)


class RecordingGate:
    """A gate that admits every call and remembers the (endpoint, scope) it was asked with."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, CallScope]] = []

    def acquire(self, endpoint: Endpoint, scope: CallScope) -> None:
        self.asked.append((endpoint.name, scope))

    def observe(self, endpoint: Endpoint, info: RateLimitInfo, http_status: int) -> None:
        pass


def answer(request: httpx.Request) -> httpx.Response:
    """The exchange, reduced to: every request succeeds (a key list is empty, a delete says true)."""
    data: object = True if request.method == "DELETE" else []
    return httpx.Response(200, content=json.dumps({"code": "200000", "data": data}).encode())


def client(gate: RecordingGate, sent: list[str]) -> ExchangeClient:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        return answer(request)

    return ExchangeClient(
        KucoinHttp(
            broker_base_url="http://exchange",
            spot_base_url="http://exchange",
            management=MANAGEMENT,
            trading=None,
            timeout=httpx.Timeout(1.0),
            transport=httpx.MockTransport(handler),
            gate=gate,
        )
    )


def test_an_urgent_and_a_normal_step_each_reach_the_gate_with_their_own_scope() -> None:
    """A revocation's calls reach the limiter as urgent and as its customer's; a normal step's as its customer's in
    the normal lane; a call made for no customer carries the anonymous scope."""
    gate, sent = RecordingGate(), []
    exchange = client(gate, sent)
    revoke = step_scope("c-1", c.RevokeApiKey(uid="u1", api_key="k1", reason="rotated"), offboarded=False)
    normal = step_scope("c-2", c.ListKeys(uid="u2"), offboarded=False)
    leaving = step_scope("c-3", c.ListKeys(uid="u3"), offboarded=True)

    exchange.scoped(revoke).api_keys.delete(uid="u1", api_key="k1")
    exchange.scoped(normal).api_keys.list(uid="u2")
    exchange.scoped(leaving).api_keys.list(uid="u3")
    exchange.api_keys.list(uid="u4")

    assert gate.asked == [
        ("delete_api_key", CallScope(rate_key="c-1", urgent=True)),
        ("get_api_keys", CallScope(rate_key="c-2", urgent=False)),
        ("get_api_keys", CallScope(rate_key="c-3", urgent=True)),
        ("get_api_keys", NO_SCOPE),
    ]
    assert len(sent) == 4


def test_a_call_names_its_own_scope_over_the_one_its_view_is_bound_to() -> None:
    """``KucoinHttp.call(..., scope=...)`` wins over the view's scope: the wire reads only what it is handed."""
    gate, sent = RecordingGate(), []
    http = client(gate, sent).scoped(CallScope(rate_key="bound")).http
    http.call(ENDPOINTS["get_api_keys"], query=[("uid", "u1")])
    http.call(ENDPOINTS["get_api_keys"], query=[("uid", "u1")], scope=CallScope(rate_key="own", urgent=True))
    assert [scope for _, scope in gate.asked] == [CallScope(rate_key="bound"), CallScope(rate_key="own", urgent=True)]


def test_the_send_deadline_of_the_scope_stops_a_write_at_the_wire_but_not_a_read() -> None:
    """A write whose scope's send deadline has passed is refused as not sent (nothing reaches the transport); a
    read under the same scope goes, and the same write under a scope with no deadline goes."""
    gate, sent = RecordingGate(), []
    exchange = client(gate, sent)
    stalled = exchange.scoped(CallScope(rate_key="c-1", send_deadline=time.monotonic() - 1))
    assert stalled.api_keys.list(uid="u1") == ()
    with pytest.raises(RetryableError, match="not sent"):
        stalled.api_keys.delete(uid="u1", api_key="k1")
    assert sent == ["GET /api/v1/broker/nd/account/apikey"]
    exchange.scoped(CallScope(rate_key="c-1", send_deadline=time.monotonic() + 60)).api_keys.delete(
        uid="u1", api_key="k1"
    )
    assert sent[-1].startswith("DELETE ")


def test_a_preadmission_lets_one_request_of_its_endpoint_through_once() -> None:
    """The weight taken before a write's intent covers that write's request only: another endpoint does not use it,
    and a second request of the same endpoint counts again."""
    ticket = Preadmission("transfer")
    assert not ticket.take("get_transfer")
    assert ticket.take("transfer")
    assert not ticket.take("transfer")
    scope = CallScope(rate_key="c-1", preadmission=Preadmission("transfer"))
    assert scope == CallScope(rate_key="c-1"), "the ticket is not part of the scope's value"
