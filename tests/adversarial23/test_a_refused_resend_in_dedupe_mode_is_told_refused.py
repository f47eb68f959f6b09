"""7ac5bd6 (adv21) fixed one path: a send that may repeat a lost one (``earlier_send_ms``: the ledger had said "not
committed") refused by the exchange keeps its intent and, the ledger still silent, goes to an operator. The same
premise — the lost send executed and took the balance, the exchange checks the balance before the clientOid, the
ledger slower than its bound — holds for the re-send ``resolve_transfer`` makes in ``dedupe``/``reject`` modes
(``resend_is_evidence``), where the lost send's clientOid is re-sent as the resolution. There the new branch does
not apply (a first send's re-send has ``earlier_send_ms == 0``) and "its silence lets a re-send's refusal stand":
``funding.refused`` for money that moved, the daily reservation released, no second-payment search."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of, paid_to, set_faults, topup, total
from tests.core.harness import Rig, events_for

pytestmark = pytest.mark.redis

TRANSFER_PATH = "/api/v1/broker/nd/transfer"


class BalanceFirst(httpx.BaseTransport):
    """An exchange that checks the Special Account's balance before it looks at the clientOid (the module's own
    assumption: "the exchange may check the balance before the clientOid"): a repeated clientOid the balance cannot
    cover is refused 400100 ``account.available.amount`` instead of deduplicated."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.inner = rig.transport.inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == TRANSFER_PATH:
            body = json.loads(request.content)
            state = self.rig.state()
            seen = any(t["clientOid"] == body["clientOid"] for t in state["transfers"])
            held = Decimal(state["broker"]["balances"]["MAIN"].get(body["currency"], "0"))
            if seen and held < Decimal(body["amount"]):
                return httpx.Response(200, json={"code": "400100", "msg": "account.available.amount"})
        return self.inner.handle_request(request)


def test_a_line_paid_before_a_refused_dedupe_resend_is_told_refused(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: ``PROVISIONER_CLIENT_OID_BEHAVIOUR=dedupe`` (the default expectation: a re-send under the same
    clientOid is the resolution of a lost answer), an exchange that checks the Special Account's balance before the
    clientOid, a ledger listing entries 10 minutes late while ``PROVISIONER_LEDGER_LAG_MS`` says 30 s (adv21's
    premise). The Special Account holds 250 USDT. A 250 USDT top-up is sent; the exchange executes it, the answer
    is lost. After the settle delay ``resolve_transfer`` re-sends it under the same clientOid; the exchange refuses:
    insufficient balance (the lost send took it). The customer is then offboarded.

    What happens: the re-send's refusal keeps the intent (``resend``); at the next run the ledger is still silent,
    and the new adv21 branch does not apply (``earlier_send_ms`` is 0 for a first send), so ``_refused``: the daily
    reservation is released, the line blocked as "the exchange refused", and at offboarding ``funding.refused`` is
    told for a line whose 250 USDT reached the sub-account (SUCCESS under the line's clientOid). No recheck runs.

    Why wrong: it is adv21's hole in the other two clientOid modes. A ``resolve_transfer`` re-send is by definition
    a send that may repeat a lost one; its refusal proves no more than the adv21 one (the module table: "no
    evidence either way ... the lost send may have taken it"). The fixed path reads the ledger twice and still asks
    an operator; this one reads it once and tells the upstream "refused".

    Suggested fix: treat a refused re-send whose ledger is silent like the ``earlier_send_ms`` case: ``_undecided``
    (an operator, counted in doubt) — i.e. drop ``details.earlier_send_ms`` from the new branch's condition (keep
    ``not operator_unsent``), or record ``earlier_send_ms`` on the intent when ``resolve_transfer`` re-sends.

    Likelihood: low (a lost answer, a balance exhausted by it, balance checked before the clientOid, a ledger
    slower than its bound); impact: funding.refused told for money that moved, the daily cap under-counted,
    nothing flagged.
    """
    config = SandboxConfig.from_dict(
        {
            "duplicate_client_oid": "dedupe",
            "ledger_lag_ms": 600_000,
            "initial_balances": {"MAIN": {"USDT": "250"}, "TRADE": {}},
        }
    )
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe")
    rig.transport.inner = BalanceFirst(rig)
    try:
        ev = events_for("dedupe-resend", funding=())
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        uid = rig.record(ref).sub_account.uid
        set_faults(rig, "transfer", drop=1.0)
        rig.publish(topup("dedupe-resend", "t1", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        rig.settle(ref)
        assert total(paid_to(rig, uid)) == Decimal(250), paid_to(rig, uid)

        rig.publish(ev["offboard"])
        for _ in range(4):
            rig.settle(ref)
            rig.clock.advance_ms(15 * 60_000)

        refused = [e["key"] for e in outbound_of(rig, "funding.refused")]
        paid = [(t["clientOid"], t["status"]) for t in paid_to(rig, uid)]
        actions = [(e["action"], e.get("error") or e.get("reason")) for e in rig.app.store.journal(ref)][-13:-10]
        assert "dedupe-resend-t1#0" not in refused, (
            f"{actions} told funding.refused for a line whose transfer is {paid}"
        )
    finally:
        rig.close()
