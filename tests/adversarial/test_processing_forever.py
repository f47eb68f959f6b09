"""A transfer the exchange keeps PROCESSING is polled forever: no verdict, no block, no report; an offboarding behind
it never closes and never says why to anyone but the log."""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, topup
from tests.core.harness import Rig, events_for


def test_processing_forever_stalls_offboarding_silently(redis_url: str, key_prefix: str) -> None:
    """Blocked is never silent, every line gets a verdict: PROCESSING forever stalls offboarding, unreported."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict({"transfer_processing_ms": 30 * 86_400_000}))
    try:
        ref, _ = onboard_with_a_key(rig, "stuck")
        rig.publish(topup("stuck", "topup", 5, [("USDT", "250")]))
        rig.run(ref)
        rig.publish(events_for("stuck", funding=())["offboard"])
        for _ in range(12):  # three days, looked at every six hours
            rig.clock.advance_ms(6 * 3_600_000)
            rig.run(ref)
        record = rig.record(ref)
        told = {e["key"] for k in ("funding.completed", "funding.refused") for e in outbound_of(rig, k)}
        flagged = bool(record.blocked) or bool(outbound_of(rig, "provisioning.failed"))
        assert record.closed_at_ms is not None or "stuck-topup#0" in told or flagged, (
            "three days of PROCESSING: offboarding neither closed nor blocked nor reported"
        )
    finally:
        rig.close()
