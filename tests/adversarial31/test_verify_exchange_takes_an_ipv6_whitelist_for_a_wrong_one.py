"""``provisioner verify --exchange`` reads keys through Get SubAccount API List, which masks whitelisted addresses
(``203.**.10``; the simulator masks an IPv6 address the same way, first and last group kept: ``2606:**:1111``).
``worker.exchange_view.unmask`` puts the record's addresses back where the masks match them one for one — but
``_masks`` answers False for any address without a ``.``, so an IPv6 address never matches its mask; and ``unmask``
then returns the listing it has been removing matches from (``shown.remove``), so the IPv4 addresses already
matched disappear from what the checker is shown."""

from __future__ import annotations

import pytest

from handlers.events import parse_event
from tests.core.harness import Rig, events_for
from worker.exchange_view import exchange_snapshot
from worker.verify import check

pytestmark = pytest.mark.redis


def test_verify_exchange_reports_a_correct_ipv6_whitelist_as_a_violation(redis_url: str, key_prefix: str) -> None:
    """
    Scenario: a customer approved with the whitelist ``["2606:4700:4700::1111", "203.0.114.10"]`` (the contract
    accepts IPv6; both are routable), onboarded and funded without any fault. On-call runs ``provisioner verify
    --exchange`` (``cli.verify_cmd.run_exchange_checks``: ``exchange_snapshot`` then ``check``).

    What happens: the key listing shows ``['203.**.10', '2606:**:1111']``; ``unmask`` matches the IPv4 mask,
    removes it from its working list, finds no match for the IPv6 address (``_masks`` requires a ``.``) and returns
    the working list: ``['2606:**:1111']``. The checker reports "newest IP whitelist: ['2606:**:1111'] !=
    ['203.0.114.10', '2606:4700:4700::1111']" and the command exits 1. The simulator-state verify of the same
    deployment reports nothing (the key holds exactly the wanted whitelist).

    Why it is wrong: verify --exchange is the operator's proof after an incident ("treat a failover as an operator
    event and run provisioner verify --exchange"); a violation that is not one, on every IPv6 customer, trains
    on-call to ignore it — and the report names a whitelist the key does not have (the IPv4 entry dropped).

    Suggested fix: in ``_masks`` split on ``:`` for an address that has one (as the masking does), or compare
    ``ipaddress`` objects' first and last groups; and have ``unmask`` return a copy of the original listing when
    it gives up.

    Likelihood: certain for any customer whitelisting an IPv6 address (servers on IPv6-only or dual-stack hosts);
    impact: false violations in the operator's verification, none in the money or keys themselves.
    """
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("six", funding=(("USDT", "100"),), ips=("2606:4700:4700::1111", "203.0.114.10"))
        published = [ev["created"], ev["kyc"]]
        ref, _ = rig.publish(*published)
        rig.settle(ref)
        assert rig.verify(published) == [], "the simulator's state: the key holds exactly the wanted whitelist"
        (key,) = rig.state()["apiKeys"]
        assert sorted(key["ipWhitelist"]) == ["203.0.114.10", "2606:4700:4700::1111"], key

        app = rig.app
        now = int(rig.clock() * 1000)
        state = exchange_snapshot(
            app.exchange,
            app.policy.naming,
            ["six"],
            app.store.load,
            currencies=app.settings.currencies,
            since_ms=now - 6 * 3_600_000,
            until_ms=now,
        )
        violations = check(
            [parse_event(e, None) for e in published],
            state,
            app.store.load,
            app.store.journal,
            naming=app.policy.naming,
            keyring=app.keyring,
            probe=lambda *_: True,  # --no-probe-keys, the default for --exchange
            funding_caps=app.settings.funding_cap_per_customer,
        )
        assert violations == [], f"verify --exchange on a correct deployment: {violations}"
    finally:
        rig.close()
