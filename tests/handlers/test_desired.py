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
    ip_changed("e-ip1", 3, "198.51.100.1"),
    rotation("e-rot", 4),
    ip_changed("e-ip2", 2, "198.51.100.2"),
    approved("e-kyc2", 5, ips=("192.0.2.9",), permissions=("general",), funding=(("BTC", "0.1"),)),
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
    assert state.access.ip_whitelist == ("192.0.2.9",)
    assert state.access.permissions == ("general",)
    assert state.requested_rotations == 1
    assert [f.key for f in state.funding] == ["e-kyc#0", "e-kyc2#0"]


def test_offboarding_is_sticky() -> None:
    assert fold([*LIFECYCLE, offboarded()]).offboarded
    assert fold([offboarded(), *LIFECYCLE]).offboarded
