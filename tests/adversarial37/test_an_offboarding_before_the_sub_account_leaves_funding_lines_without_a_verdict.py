"""``plan`` closes a customer that is offboarded while it has no sub-account (``CloseCustomer("offboarded before
its sub-account was created")``, or "... before created") at once, before ``_offboard`` ever runs. Only
``_offboard`` refuses the funding lines nobody will send (``RefuseFunding``, ``OFFBOARDED_REASON``), so the lines
of a KYC approval or a top-up stored before that close end with no verdict at all: no ``funding.completed``, no
``funding.refused``, and, the event having been taken before the close, no ``event.ignored`` either."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from tests.adversarial.helpers import outbound_of, topup
from tests.core.harness import Rig, events_for

pytestmark = pytest.mark.redis


def _lines_told(rig: Rig) -> list[str]:
    return [e["id"] for e in outbound_of(rig, "funding.completed") + outbound_of(rig, "funding.refused")]


def test_a_customer_offboarded_while_its_sub_account_creation_is_blocked_never_hears_of_its_funding_lines(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: the broker is at KuCoin's sub-account limit (``accountSize`` = ``maxAccountSize``; here the simulator's
    ``max_account_size=0``). A customer arrives: ``customer.created``, ``customer.kyc_approved`` with a 250 USDT
    funding line, and a ``customer.funding_requested`` top-up of 100 USDT. The sub-account's creation is refused for
    the limit and blocked (``provisioning.failed``, "have KuCoin raise the limit"). Before anyone raises it, the
    customer gives up and the upstream sends ``customer.offboarded``.

    What happens: ``plan`` sees no sub-account and ``desired.offboarded`` and returns ``CloseCustomer("offboarded
    before its sub-account was created")`` straight away. The record is closed, ``customer.offboarded`` is told, and
    the two funding lines (``…-kyc_approved#0``, ``…-topup#0``) get neither ``funding.completed`` nor
    ``funding.refused``; their events were taken before the close, so no ``event.ignored`` names them either.
    ``provisioner verify`` finds nothing wrong. The same holds when the offboarding merely arrives before
    ``customer.created`` (re-ordered delivery: the "offboarding in any position" test only checks the exchange).

    Why it is wrong: README: "Every funding line ends with exactly one verdict: ``funding.completed`` … or
    ``funding.refused`` (a cap, the offboarding, or an operator refused it)"; the offboarding row: "refused once the
    customer is offboarded". The upstream holds the customer's money or a promise against each line (a top-up it
    charged for) and waits for a verdict that never comes — the line stays "pending" in its books for good, and it
    cannot tell "still in flight" from "dropped".

    Suggested fix: in ``plan``'s ``sub is None`` branch, refuse every funding line not yet decided (``_refuse(...,
    OFFBOARDED_REASON)``, which needs no sub-account) before ``CloseCustomer``; or make ``close_customer`` tell
    ``funding.refused`` for every line of ``desired.funding`` it closes over without a transfer record.

    Likelihood: medium — a broker at its sub-account cap blocks every new customer at once (each one a candidate
    for an upstream that cancels stuck sign-ups), and re-ordered delivery of an offboarding ahead of
    ``customer.created`` is exactly what the at-least-once contract allows; impact: funding lines with no verdict,
    silently.
    """
    rig = Rig(redis_url, key_prefix, config=SandboxConfig(max_account_size=0))
    try:
        ev = events_for("capped-out", funding=(("USDT", "250"),))
        top = topup("capped-out", "topup", 2, [("USDT", "100")])
        (ref,) = rig.publish(ev["created"], ev["kyc"], top)[:1]
        rig.settle(ref)
        assert rig.record(ref).sub_account is None
        assert any(b.startswith("subaccount") or "subaccount" in b for b in rig.record(ref).blocked), (
            f"precondition: the sub-account's creation is blocked: {rig.record(ref).blocked}"
        )

        rig.publish(ev["offboard"])
        rig.settle(ref)
        assert rig.record(ref).closed_at_ms is not None, "precondition: the customer is closed"

        lines = {f"{ev['kyc']['id']}#0", f"{top['id']}#0"}
        told = {line for line in lines if any(line in i for i in _lines_told(rig))}
        ignored = {e["event_id"] for e in outbound_of(rig, "event.ignored")}
        unanswered = {line for line in lines - told if line.split("#")[0] not in ignored}
        assert not unanswered, (
            f"funding lines closed over with no verdict (no funding.completed/refused, no event.ignored): "
            f"{sorted(unanswered)}; told: {[e['type'] for e in rig.outbound()]}"
        )
    finally:
        rig.close()


def test_an_offboarding_delivered_before_customer_created_leaves_the_approvals_line_unanswered(
    redis_url: str, key_prefix: str
) -> None:
    """
    Scenario: re-ordered delivery: the approval (250 USDT) and the offboarding reach the worker before
    ``customer.created`` (its message was retried, or dead-lettered and replayed later).

    What happens: ``CloseCustomer("offboarded before created")``; ``customer.created`` is then ``event.ignored``; the
    approval's line was taken before the close and is never answered.

    Why it is wrong / fix / likelihood: as above (the README's "every order" promise covers this order).
    """
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("early-off", funding=(("USDT", "250"),))
        (ref,) = rig.publish(ev["kyc"], ev["offboard"])[:1]
        rig.settle(ref)
        rig.app.intake.accept(ev["created"])  # late: ignored, the customer is closed
        rig.settle(ref)
        assert rig.record(ref).closed_at_ms is not None, "precondition: the customer is closed"
        line = f"{ev['kyc']['id']}#0"
        told = [i for i in _lines_told(rig) if line in i]
        ignored = {e["event_id"] for e in outbound_of(rig, "event.ignored")}
        assert told or ev["kyc"]["id"] in ignored, (
            f"the approval's line {line} got no verdict; the upstream heard only {[e['type'] for e in rig.outbound()]}"
        )
    finally:
        rig.close()
