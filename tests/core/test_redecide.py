"""A funding line refused for a cause that can be fixed is decided again by `customer retry` once it is fixed:
sent once, told funding.completed after its funding.refused, under distinct event ids; a refusal that stands is
never sent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from handlers.events import parse_event
from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.verify import Violation, check

DAY_MS = 86_400_000


def _verify(rig: Rig, published: list[dict[str, Any]]) -> list[Violation]:
    """`provisioner verify`, with what the upstream was told."""
    app = rig.app
    return check(
        [parse_event(e, None) for e in published],
        rig.state(),
        app.store.load,
        app.store.journal,
        naming=app.policy.naming,
        keyring=app.keyring,
        probe=rig.key_works,
        funding_caps=app.settings.funding_cap_per_customer,
        outbound=rig.outbound(),
    )


def _told(rig: Rig, key: str) -> list[tuple[str, str]]:
    return [(e["type"], e["id"]) for e in rig.outbound() if e.get("key") == key]


def test_a_line_over_the_daily_cap_is_sent_when_retried_the_next_day(redis_url: str, key_prefix: str) -> None:
    """Two 60 USDT lines under a 100 USDT daily cap: the second is refused; retried the next UTC day, it is sent."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_FUNDING_CAP_PER_DAY="USDT=100")
    try:
        ev = events_for("day-cap", funding=(("USDT", "60"), ("USDT", "60")))
        (ref,) = rig.publish(ev["created"], ev["kyc"])[:1]
        rig.settle(ref)
        second = "day-cap-kyc_approved#1"
        assert rig.record(ref).transfers[second].status == "refused"
        assert _told(rig, second) == [("funding.refused", f"funding.refused:{ref}:{second}")]

        rig.run(ref, retry_blocked=True)  # the same day: refused again, as a new outcome
        rig.settle(ref)
        assert [t for t, _ in _told(rig, second)] == ["funding.refused", "funding.refused"]
        assert _told(rig, second)[1][1] == f"funding.refused:{ref}:{second}:r1"

        rig.clock.advance_ms(DAY_MS)
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)
        record = rig.record(ref)
        assert record.transfers[second].status == "committed"
        assert record.funded("USDT") == Decimal(120)
        assert len(rig.state()["transfers"]) == 2
        told = _told(rig, second)
        assert [t for t, _ in told] == ["funding.refused", "funding.refused", "funding.completed"]
        assert len({i for _, i in told}) == 3
        assert [e["action"] for e in rig.app.store.journal(ref)].count("funding.redecided") == 2
        assert _verify(rig, [ev["created"], ev["kyc"]]) == []

        rig.run(ref, retry_blocked=True)  # nothing left to decide: no transfer, no event
        rig.settle(ref)
        assert len(rig.state()["transfers"]) == 2 and len(_told(rig, second)) == 3
    finally:
        rig.close()


def test_a_line_an_operator_refused_is_never_sent(redis_url: str, key_prefix: str) -> None:
    """A transfer blocked for a verdict and refused by an operator stays refused through any number of retries."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "none"}),
        PROVISIONER_CLIENT_OID_BEHAVIOUR="accept",
    )
    try:
        ev = events_for("op-refused")
        (ref,) = rig.publish(ev["created"])
        rig.settle(ref)
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 1.0}}}})
        rig.publish(ev["kyc"])
        rig.run(ref)
        rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 0.0}}}})
        rig.settle(ref)
        record = rig.record(ref)
        (step,) = [s for s, b in record.blocked.items() if b.manual]
        sent = len(rig.state()["transfers"])
        settle_transfer(rig.app, ref, step, verdict=TransferVerdict.REFUSED, who="test", note="checked with KuCoin")
        for _ in range(2):
            rig.run(ref, retry_blocked=True)
            rig.settle(ref)
        assert rig.record(ref).transfers[step.removeprefix("fund:")].status == "refused"
        assert len(rig.state()["transfers"]) == sent
    finally:
        rig.close()
