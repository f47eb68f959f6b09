"""The pure delivery decisions: what is delivered, Retry-After, backoff with jitter, the retry horizon."""

from __future__ import annotations

import itertools

import pytest

from handlers.delivery import (
    Answer,
    Delivered,
    GiveUp,
    RetryAt,
    RetryPolicy,
    Tries,
    backoff_ms,
    decide,
    http_date,
    is_delivered,
    retry_after_ms,
)

NOW = 1_795_000_000_000
POLICY = RetryPolicy(min_backoff_ms=5_000, max_backoff_ms=3_600_000, horizon_ms=3 * 86_400_000)


@pytest.mark.parametrize(
    ("status", "delivered"),
    [
        (200, True),
        (204, True),
        (299, True),
        (None, False),
        (301, False),
        (404, False),
        (429, False),
        (500, False),
        (199, False),
    ],
)
def test_only_2xx_is_delivered(status: int | None, delivered: bool) -> None:
    assert is_delivered(status) is delivered


def test_retry_after_seconds_and_dates() -> None:
    assert retry_after_ms("120", NOW) == 120_000
    assert retry_after_ms(" 0 ", NOW) == 0
    assert retry_after_ms(http_date(NOW + 90_000), NOW) == 90_000
    assert retry_after_ms(http_date(NOW - 90_000), NOW) == 0, "a date in the past: now"
    for junk in (None, "", "soon", "-5", "1.5", "Thu, 99 Foo 2026"):
        assert retry_after_ms(junk, NOW) is None


def test_backoff_doubles_within_its_upper_half_and_is_capped() -> None:
    assert [backoff_ms(n, POLICY, 0.0) for n in (1, 2, 3, 4)] == [2_500, 5_000, 10_000, 20_000]
    assert [backoff_ms(n, POLICY, 0.999999) for n in (1, 2, 3)] == [4_999, 9_999, 19_999]
    assert backoff_ms(30, POLICY, 0.0) == 1_800_000 and backoff_ms(500, POLICY, 0.999999) == 3_599_998


def test_decisions() -> None:
    tries = Tries().after(Answer(503, "HTTP 503"), NOW)
    assert decide(tries, Answer(200), NOW, POLICY, 0.5) == Delivered()
    assert decide(tries, Answer(503, "HTTP 503"), NOW, POLICY, 0.0) == RetryAt(NOW + 2_500)
    asked = Answer(429, "HTTP 429", retry_after_ms=600_000)
    assert decide(tries, asked, NOW, POLICY, 0.0) == RetryAt(NOW + 600_000), "Retry-After longer than the backoff"
    short = Answer(429, "HTTP 429", retry_after_ms=1)
    assert decide(tries, short, NOW, POLICY, 0.0) == RetryAt(NOW + 2_500), "never sooner than the backoff"


def test_retries_last_the_whole_horizon_then_give_up() -> None:
    """Simulated with failing answers: the last retry is at the horizon exactly, and its failure gives up."""
    tries, now, times = Tries(), NOW, []
    while True:
        answer = Answer(None, "connect error")
        tries = tries.after(answer, now)
        decision = decide(tries, answer, now, POLICY, 0.5)
        if isinstance(decision, GiveUp):
            break
        assert isinstance(decision, RetryAt) and decision.at_ms > now
        now = decision.at_ms
        times.append(now)
    assert now == NOW + POLICY.horizon_ms, "the final attempt is at the horizon"
    assert "72 h" in decision.reason and "connect error" in decision.reason
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) <= POLICY.max_backoff_ms
    assert 90 < tries.attempts < 120, tries.attempts  # ramp to the cap, then about every 45 minutes


def test_a_huge_retry_after_is_cut_at_the_horizon() -> None:
    tries = Tries().after(Answer(503), NOW)
    later = decide(tries, Answer(503, retry_after_ms=10 * 86_400_000), NOW, POLICY, 0.0)
    assert later == RetryAt(NOW + POLICY.horizon_ms)


def test_tries_keep_the_first_attempt() -> None:
    tries = Tries().after(Answer(500, "HTTP 500"), NOW).after(Answer(None, "timeout"), NOW + 9)
    assert (tries.attempts, tries.first_ms, tries.last_ms, tries.last_status, tries.last_error) == (
        2,
        NOW,
        NOW + 9,
        None,
        "timeout",
    )


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(min_backoff_ms=10, max_backoff_ms=5)
