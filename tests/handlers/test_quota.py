"""The limiter's rules for the exchange's window (``handlers.quota``), pure: a campaign against the simulator's own
windows fills each window to the limit, never draws a 429, and waits once per caller and window."""

from __future__ import annotations

from dataclasses import replace

from handlers.quota import QuotaRules, QuotaWindow, decide, hear
from tests.handlers.quota_sim import campaign


class Pure:
    """``handlers.quota`` as a limiter, with the reservations a shared limiter keeps per caller."""

    def __init__(self, quota: int, *, window_ms: int = 30_000, share: float = 0.01) -> None:
        self.rules = QuotaRules(limit=quota, window_ms=window_ms, lag_ms=min(2_000, window_ms // 10))
        self.share = share
        self.window = QuotaWindow()
        self.holds: dict[str, int] = {}

    def _rules(self) -> QuotaRules:
        return replace(self.rules, reserve=int(self.rules.limit * self.share))

    def ask(self, now: int, who: str, weight: int, *, urgent: bool) -> int:
        self.window, verdict = decide(
            self.window, self._rules(), now, weight, urgent=urgent, holds=self.holds.pop(who, None), can_book=True
        )
        if verdict.booked is not None:
            self.holds[who] = verdict.booked
        return verdict.wait_ms

    def hear(self, now: int, *, limit: int, remaining: int, reset_ms: int, refused: bool) -> None:
        self.rules = replace(self.rules, limit=limit)
        self.window = hear(self.window, self._rules(), now, remaining=remaining, reset_ms=reset_ms, refused=refused)


def warm(limiter: Pure, now: int, quota: int) -> Pure:
    """The exchange has answered once before (no window running): the window rules decide from the start."""
    limiter.hear(now, limit=quota, remaining=quota, reset_ms=0, refused=False)
    return limiter


def test_a_one_minute_campaign_fills_each_window_and_draws_no_429() -> None:
    """90 customers × 7 at 300 per 30 s, 100 ms each way: 630 weight is three windows (297 + 297 + 36, 1 % kept for
    the urgent lane), so the campaign ends just after the third window opens — before the ideal 63 s."""
    out = campaign(warm(Pure(300), 999_000, 300), customers=90, quota=300)
    assert out.refused == 0
    assert out.sent_weight == 630
    took = out.finished_ms - 1_000_000
    assert 60_000 <= took <= 61_000, took


def test_a_long_campaign_keeps_every_window_full() -> None:
    """400 customers × 7 at 300 per 30 s (ten windows): 2 800 weight at 297 per window ends early in the tenth."""
    out = campaign(warm(Pure(300), 999_000, 300), customers=400, quota=300)
    assert out.refused == 0
    took = out.finished_ms - 1_000_000
    assert 9 * 30_000 <= took <= 9 * 30_000 + 2 * 2_000 + 1_000, took
    requests = 3 * 400
    assert out.asks <= 3 * requests, "a request asks when booked, maybe once early, and when due: not at every reset"


def test_from_cold_the_first_answer_tells_where_the_window_is() -> None:
    """Nothing known (the exchange never answered): the first answer sets the window, counting what was already
    admitted; the window then fills to the limit without a 429."""
    limiter = Pure(300)
    rules = QuotaRules(limit=300, reserve=3)
    limiter.window = replace(QuotaWindow(), pending=9)  # the rate schedule let 9 go before the first answer
    limiter.hear(1_000_100, limit=300, remaining=297, reset_ms=29_900, refused=False)
    assert limiter.window.seq == 1 and limiter.window.end == 1_030_000 and limiter.window.used == 12
    out = campaign(limiter, customers=90, quota=300, start_ms=1_000_200, foreign=((1_000_000, 12),))
    assert out.refused == 0
    assert rules.cap == 297


def test_someone_else_using_the_key_is_seen_in_the_answers() -> None:
    """Another client spends 120 of each window's 300 (unknown to the limiter): the answers' remaining raise our
    count; at most the requests already in flight can be refused, once per window, and the campaign still ends."""
    foreign = tuple((1_000_000 + 30_000 * k + 5, 120) for k in range(8))
    out = campaign(warm(Pure(300), 999_000, 300), customers=60, quota=300, foreign=foreign)
    assert out.sent_weight == 420
    assert out.refused <= 8


def test_the_urgent_lane_skips_the_queue_and_uses_the_reserve() -> None:
    """A full window: a normal caller is booked into the next one; an urgent one goes now, on the kept share."""
    rules = QuotaRules(limit=300, reserve=3)
    window = QuotaWindow(seq=1, start=0, end=30_000, used=297, answered=True)
    window, normal = decide(window, rules, 1_000, 3, can_book=True)
    assert normal.wait_ms == 29_000 and normal.booked == 2
    window, urgent = decide(window, rules, 1_000, 3, urgent=True)
    assert urgent.wait_ms == 0 and window.used == 300
    _, again = decide(window, rules, 1_000, 3, urgent=True)
    assert again.wait_ms == 29_000, "the urgent lane too stays within the limit"


def test_a_booked_caller_is_admitted_on_its_held_weight_in_its_window() -> None:
    """The weight booked into a window is held for its callers when it opens: newcomers do not take it."""
    rules = QuotaRules(limit=12, reserve=0)
    window = QuotaWindow(seq=1, start=0, end=30_000, used=12, answered=True)
    holds = {}
    for who in "abcd":
        window, verdict = decide(window, rules, 100, 3, can_book=True)
        holds[who] = verdict.booked
    assert holds == {"a": 2, "b": 2, "c": 2, "d": 2}
    window, newcomer = decide(window, rules, 30_000, 3, can_book=True)
    assert newcomer.wait_ms > 0 and window.held == 12, "the new window is held for the four booked callers"
    for who in "abcd":
        window, verdict = decide(window, rules, 30_001, 3, holds=holds[who], can_book=True)
        assert verdict.wait_ms == 0
    assert window.used == 12 and window.held == 0


def test_an_answer_about_an_earlier_window_changes_nothing() -> None:
    """An answer that left the exchange before our window started (its reset is too early for our window)."""
    rules = QuotaRules(limit=300, lag_ms=2_000)
    window = QuotaWindow(seq=3, start=60_000, end=92_000, used=40, answered=False)
    assert hear(window, rules, 60_050, remaining=0, reset_ms=10, refused=False) == window
    heard = hear(window, rules, 60_200, remaining=250, reset_ms=29_900, refused=False)
    assert heard.end == 90_100 and heard.used == 50 and heard.answered
