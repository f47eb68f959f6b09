"""d4753ac: ``_agrees_with_the_order`` returns — takes any verdict — when Get Transfer History answers the block's
order with a ``PermanentError`` ("An order the exchange does not know leaves the verdict to the operator"). But the
order came from the exchange itself, and ``confirm_transfer`` already treats "the exchange does not (yet) know the
order it gave us" as *not final* ("look again later, never guess"); after ``PROCESSING_LIMIT_MS`` of it, that is
exactly what ``_stuck`` blocks ("PROCESSING (or unknown to its history)"). So the one kind of stuck block the check
cannot read is the kind it waves through.

Scenario: default settings, transfers PROCESSING for six hours and credited on completion; Get Transfer History
answers C's order with 400100 "orderId does not exist" (an index lagging on KuCoin's side, or a permission error of
the CLI's key that is not one of the auth codes — anything ``classify`` turns into ``PermanentError``). C's 250 USDT
top-up is accepted; C is offboarded; at the hour the line is blocked (order unknown to its history) and the sweep
moves C's balances (0 USDT) back. The on-call, told by KuCoin support that the Special Account was debited, answers
``settle-transfer --committed``.

What happens: the verdict is taken; the snapshot dropped, balances read again (0), C closed. At six hours the
transfer completes: 250 USDT in a closed customer's sub-account.

Why it is wrong: README ("A transfer that stays PROCESSING"): settle-transfer "takes only the verdict the
exchange's record allows: none while it is PROCESSING" — an unreadable record allows less, not more; the adv15
break comes back through the check's escape hatch. (``--refused`` is let through the same way: funding.refused for
an order that may still complete.)

Suggested fix: a ``PermanentError`` for the block's order refuses every verdict (say so: "the exchange does not
show order X; ask KuCoin to confirm it final, then `--force`" with an explicit override that is journaled), or
records a committed verdict ACCEPTED so ``confirm_transfer`` keeps reading it and the offboarding keeps waiting.

Likelihood: low (the history must not show an order it issued for over an hour, or the CLI's key must lack the
read); the effect is the silent stranding the adv15 fix was made to prevent.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import httpx
import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, topup, usdt_held
from tests.core.harness import Rig, events_for
from worker.provisioning.operator import OperatorError, settle_transfer


@dataclass
class HistoryMissing(httpx.BaseTransport):
    """The simulator, but Get Transfer History does not know any order (KuCoin's 400100 "orderId does not exist")."""

    inner: httpx.BaseTransport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/api/v3/broker/nd/transfer/detail":
            return httpx.Response(200, json={"code": "400100", "msg": "orderId does not exist"}, request=request)
        return self.inner.handle_request(request)


def test_a_committed_verdict_on_an_order_unknown_to_history_closes_before_the_credit(
    redis_url: str, key_prefix: str
) -> None:
    config = {"transfer_processing_ms": 6 * 3_600_000, "transfer_credit": "on_completion"}
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict(config))
    try:
        ref, uid = onboard_with_a_key(rig, "hidden")
        real = rig.transport.inner
        rig.transport.inner = HistoryMissing(real)
        rig.publish(topup("hidden", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        rig.publish(events_for("hidden", funding=())["offboard"])
        for _ in range(3):  # an hour and a half: blocked at the hour, the sweep done
            rig.clock.advance_ms(30 * 60_000)
            rig.settle(ref)
        record = rig.record(ref)
        blocked = record.blocked.get("fund:hidden-topup#0")
        assert blocked is not None and blocked.manual and record.closed_at_ms is None, record.blocked
        assert blocked.intent is not None and blocked.intent.details.order_id is not None  # the block names it
        assert usdt_held(rig, uid) == 0

        rig.clock.advance_ms(30 * 60_000)  # two hours: still PROCESSING on the exchange, debited
        with contextlib.suppress(OperatorError):  # refused while the exchange cannot show the order: the fix
            settle_transfer(rig.app, ref, "fund:hidden-topup#0", committed=True, who="oncall", note="support: debited")
        rig.settle(ref)
        closed = rig.record(ref).closed_at_ms is not None

        rig.transport.inner = real
        rig.clock.advance_ms(5 * 3_600_000)  # the transfer completes: credited now
        assert usdt_held(rig, uid) == 250
        assert not closed, f"closed with {usdt_held(rig, uid)} USDT credited after the close"

        # KuCoin's support confirms the transfer while its history still does not show it: --force takes the
        # verdict on their word (journalled), the offboarding sweeps the credit and closes
        rig.transport.inner = HistoryMissing(real)
        with pytest.raises(OperatorError, match="--force"):
            settle_transfer(rig.app, ref, "fund:hidden-topup#0", committed=True, who="oncall", note="support: done")
        settle_transfer(rig.app, ref, "fund:hidden-topup#0", committed=True, who="oncall", note="support", force=True)
        rig.transport.inner = real
        rig.settle(ref)
        assert rig.record(ref).closed_at_ms is not None and usdt_held(rig, uid) == 0
        forced = [e for e in rig.app.store.journal(ref) if e.get("action") == "transfer.committed" and e.get("forced")]
        assert forced, "the forced verdict is journalled as such"
    finally:
        rig.close()
