"""Under ``dedupe``/``reject`` a re-send refused for another reason than "clientOid duplicated" is settled from the
ledger (``resolve_transfer``: "the ledger decides"), but the settle delay of those modes leaves out the ledger's lag.
On an exchange that checks the balance before the clientOid (which the module docstring allows) and a ledger lagging
within ``PROVISIONER_LEDGER_LAG_MS``, a lost transfer whose re-send meets a drained Special Account is recorded as
refused (its daily reservation released); the documented ``customer retry`` once the account is topped up pays the
line again, and nothing flags it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

import httpx

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, set_faults, topup
from tests.core.harness import Rig


@dataclass
class BalanceFirst(httpx.BaseTransport):
    """KuCoin checking the source balance before it looks at the clientOid (the simulator does the reverse)."""

    inner: httpx.BaseTransport
    rig: Rig

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/v1/broker/nd/transfer":
            body = json.loads(request.read())
            broker = self.rig.state()["broker"]["balances"][body["accountType"]]
            if Decimal(broker.get(body["currency"], "0")) < Decimal(str(body["amount"])):
                return httpx.Response(200, json={"code": "400100", "msg": "account.available.amount"})
        return self.inner.handle_request(request)


def test_a_lost_transfer_refused_on_resend_is_paid_again_after_the_documented_retry(
    redis_url: str, key_prefix: str
) -> None:
    """No double transfer with correct settings: a re-send refused for balance is judged before the ledger lists it."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "dedupe", "ledger_lag_ms": 20_000}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe",  # true of this exchange
        PROVISIONER_LEDGER_LAG_MS="30000",  # true of this exchange
        PROVISIONER_LISTING_LAG_MS="0",
    )
    rig.transport.inner = BalanceFirst(rig.transport.inner, rig)
    try:
        ref, uid = onboard_with_a_key(rig, "refused-resend")
        set_faults(rig, "transfer", drop=1.0)  # committed, answer lost
        rig.publish(topup("refused-resend", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        set_faults(rig, "transfer", drop=0.0)
        broker = rig.exchange.broker_uid
        drained = Decimal(rig.state()["broker"]["balances"]["MAIN"]["USDT"])
        rig.exchange.credit(broker, "USDT", "MAIN", -drained)  # the campaign used the Special Account up
        rig.settle(ref)
        # the ledger (read after its lag) shows the lost transfer: committed; had it not, the line would be
        # blocked for the retry below
        rig.exchange.credit(broker, "USDT", "MAIN", drained)  # on-call tops the Special Account up ...
        rig.run(ref, retry_blocked=True)  # ... and runs `provisioner customer retry`, as the block asks
        rig.settle(ref)
        paid = paid_to(rig, uid)
        doubles = [e for e in outbound_of(rig, "provisioning.failed") if e["step"].startswith("double:")]
        assert len(paid) == 1 or doubles, f"paid {len(paid)} times, nothing flagged"
    finally:
        rig.close()
