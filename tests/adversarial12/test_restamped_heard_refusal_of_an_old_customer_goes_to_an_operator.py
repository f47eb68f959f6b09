"""a1ee17a searches a refusal in doubt "from the refusal, at most the ledger's window back" (``_look_since``) so that
no operator is asked about a refusal the ledger can still judge (7e048f4 asked one about every refusal older than 31
days). But ``_look_since`` returns early for a line whose event is stamped after the loss — the usual case after a
Redis flush, when the upstream re-publishes its events with new ``occurred_at`` — with the sub-account's creation as
the start, neither bounded by the refusal nor by the ledger's 31 days. For a customer older than 31 days the search
answers UNDECIDED ("the first possible send is too long ago") and the refusal is blocked, manual, for an operator.

Scenario: ``dedupe``, default ledger, per-customer cap 1000 USDT. Customer X (onboarded on day 0) is paid 900 (line
P). Forty days later X asks for a 600 top-up (line A): refused by the per-customer cap (``funding.refused``,
delivered). Redis loses everything; ``provisioner recover --heard received.jsonl``; the upstream re-publishes X's
events re-stamped (``occurred_at`` = the time of re-publication, which the README allows: "a re-published line may
carry a new one"); the on-call declares the re-publication (no ``--stamps-kept``).

What happens: A (heard, refused by a cap: in doubt since a1ee17a) is looked for from X's sub-account's creation,
40 days back: ``_judge`` answers UNDECIDED, ``fund:A`` is blocked for an operator asking them to check ten clientOids
with KuCoin; A's 600 counts as in doubt against the per-customer cap meanwhile.

Why it is wrong: a1ee17a's own promise (a refusal in doubt is "searched from the refusal within the ledger's 31 days",
"a refusal found unpaid stands, nothing new told", no operator) and README guarantee 7 (an operator only where the
exchange cannot tell): a refusal decided before any send can only have been paid by a retry, which happened within
the last 31 days if its completion was still undelivered at the loss. Before a1ee17a the heard refusal simply stood.

Suggested fix: in ``_look_since``, apply the refusal's bounds (its ``at_ms`` for a restored one, the heard event's
``occurred_at`` where the heard file gives it, and always ``now - LEDGER_MAX_WINDOW_MS``) also when the line is
stamped after the loss: compute ``since`` first, then ``max`` with the window for a refusal in doubt.

How likely: high for deployments whose upstream re-stamps on re-publication: every heard cap refusal of every
customer onboarded more than 31 days before a flush becomes an operator's ticket, and holds that customer's funding
of the currency (``CustomersBlocked``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.adversarial.helpers import onboard_with_a_key, outbound, topup
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.heard import outcomes_from_events
from worker.recovery import declare_republished, recover

DAY_MS = 86_400_000


def _restamped(rig: Rig, event: dict[str, Any]) -> dict[str, Any]:
    now = datetime.fromtimestamp(rig.clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {**event, "occurred_at": now}


def test_a_restamped_heard_cap_refusal_of_an_old_customer_is_not_put_to_an_operator(
    redis_url: str, key_prefix: str
) -> None:
    rig = Rig(redis_url, key_prefix, PROVISIONER_CLIENT_OID_BEHAVIOUR="dedupe")
    try:
        ref, _uid = onboard_with_a_key(rig, "rs-x")
        line_p = topup("rs-x", "topup-p", 4, [("USDT", "900")])
        rig.publish(line_p)
        rig.settle(ref)
        rig.clock.advance_ms(40 * DAY_MS)
        line_a = _restamped(rig, topup("rs-x", "topup-a", 5, [("USDT", "600")]))
        rig.publish(line_a)
        rig.settle(ref)
        assert rig.record(ref).transfers["rs-x-topup-a#0"].status.value == "refused"
        received = [e for e in outbound(rig) if e["type"] in ("funding.completed", "funding.refused")]
        rig.app.state.check()
        rig.clock.advance_ms(3_600_000)

        lose_everything(rig)
        app = second_host(rig, same_host=True)
        try:
            report = recover(app, reason="test: Redis lost everything", heard=outcomes_from_events(received))
            assert report.detected != "ok", report
            rig.clock.advance_ms(60_000)
            ev = events_for("rs-x", funding=())
            redeliver(app, [_restamped(rig, e) for e in (ev["created"], ev["kyc"], line_p, line_a)])
            settle_with(rig, app, ref)
            rig.clock.advance_ms(600_000)
            declare_republished(app)
            for _ in range(2):
                app.due.schedule(ref, int(rig.clock() * 1000))
                settle_with(rig, app, ref)
                rig.clock.advance_ms(600_000)
            record = app.store.load(ref)
            assert record is not None
            asked = {k: b.reason.split("outcome unknown")[-1][:90] for k, b in record.blocked.items() if b.manual}
            assert not asked, f"an operator is asked about a heard cap refusal never retried: {asked}"
        finally:
            app.close()
    finally:
        rig.close()
