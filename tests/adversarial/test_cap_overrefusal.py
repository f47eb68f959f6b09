"""The per-customer cap counts an ACCEPTED transfer as money moved for good, though the exchange may still report it
FAILED: a later line is refused for a cap it would have fitted (``cap_decision`` promises to refuse only when the line
cannot fit whatever the verdicts are)."""

from __future__ import annotations

from sandbox import SandboxConfig
from tests.adversarial.helpers import onboard_with_a_key, outbound_of, paid_to, topup
from tests.core.harness import Rig


def test_a_line_is_refused_for_a_cap_filled_only_by_a_transfer_that_then_failed(
    redis_url: str, key_prefix: str
) -> None:
    """Caps refuse only what cannot fit: a line is refused for a cap filled only by a transfer that then FAILED."""
    rig = Rig(
        redis_url,
        key_prefix,
        config=SandboxConfig.from_dict({"transfer_processing_ms": 5_000, "transfer_failure_share": 1.0}),
    )
    try:
        ref, uid = onboard_with_a_key(rig, "overrefused")
        rig.publish(topup("overrefused", "topup", 5, [("USDT", "600"), ("USDT", "600")]))  # cap 1000
        rig.run(ref)
        rig.exchange.update_config({"transfer_failure_share": 0.0})
        rig.settle(ref)

        refused = [(e["key"], e["reason"]) for e in outbound_of(rig, "funding.refused")]
        assert not refused, f"refused for a cap nothing filled: {refused}"
        assert [t["amount"] for t in paid_to(rig, uid)] == ["600"], "line #1 is paid once #0 turned out FAILED"
    finally:
        rig.close()
