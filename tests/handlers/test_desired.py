"""Folding events into desired state does not depend on arrival order or duplicates."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.desired import fold
from tests.handlers.factory import approved, created, ip_changed, offboarded, rotation

LIFECYCLE = [
    created(),
    approved(minute=1, funding=(("USDT", "250"),)),
    ip_changed("e-ip1", 3, "198.51.101.1"),
    rotation("e-rot", 4),
    ip_changed("e-ip2", 2, "198.51.101.2"),
    approved("e-kyc2", 5, ips=("192.0.3.9",), permissions=("general",), funding=(("BTC", "0.1"),)),
]


def test_every_permutation_folds_to_the_same_state() -> None:
    """All 720 orders of a six-event lifecycle give one desired state."""
    expected = fold(LIFECYCLE)
    for order in itertools.permutations(LIFECYCLE):
        assert fold(order) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(range(len(LIFECYCLE))), min_size=len(LIFECYCLE) * 2).map(
        lambda idx: [LIFECYCLE[i] for i in idx]
    )
)
def test_duplicates_change_nothing(events) -> None:
    """Any multiset of copies of the same events folds like the set itself."""
    present = {e.id: e for e in events}
    assert fold(events) == fold(present.values())


def test_newest_wins_by_occurred_at_then_id() -> None:
    state = fold(LIFECYCLE)
    assert state.access is not None
    assert state.access.ip_whitelist == ("192.0.3.9",)
    assert state.access.permissions == ("general",)
    assert state.requested_rotations == 1
    assert [f.key for f in state.funding] == ["e-kyc#0", "e-kyc2#0"]


def test_offboarding_is_sticky() -> None:
    assert fold([*LIFECYCLE, offboarded()]).offboarded
    assert fold([offboarded(), *LIFECYCLE]).offboarded


def test_changes_nanoseconds_apart_are_ordered_by_time_not_by_id() -> None:
    """RFC 3339 allows nine fractional digits: two IP changes 800 ns apart are ordered by when they occurred, so
    the later one wins even though its id sorts first."""
    from handlers.events import parse_event

    def change(eid: str, stamp: str, ip: str) -> object:
        return parse_event(
            {
                "id": eid,
                "type": "customer.ip_changed",
                "customer_id": "cust-1",
                "occurred_at": stamp,
                "data": {"ip_whitelist": [ip]},
            },
            None,
        )

    earlier = change("z-first", "2026-11-22T10:05:00.000000100Z", "198.51.101.1")
    later = change("a-second", "2026-11-22T10:05:00.000000900Z", "198.51.101.2")
    state = fold([created(), approved(), earlier, later])  # type: ignore[list-item]
    assert state.access is not None
    assert state.access.ip_whitelist == ("198.51.101.2",)
