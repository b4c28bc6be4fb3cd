"""Scheduling policy: intervals, jitter, learned rates, backoff, digest periods (pure functions)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from monitor.schedule import (
    MAX_BACKOFF,
    IntervalPolicy,
    base_interval,
    error_backoff,
    jittered,
    learn_rate,
    learned_interval,
    period_end,
)
from monitor.settings import DigestSpec

NOW = datetime(2026, 3, 10, 10, 17, 30, tzinfo=UTC)


def test_fixed_interval_ignores_learning() -> None:
    p = IntervalPolicy(600, 300, 86400, 900)
    assert base_interval(p, learned=60, ttl=None) == 600


def test_auto_interval_within_bounds_and_ttl() -> None:
    p = IntervalPolicy("auto", 300, 86400, 900)
    assert base_interval(p, None, None) == 900  # nothing learned yet
    assert base_interval(p, 60, None) == 300  # a very busy feed: not below min_interval
    assert base_interval(p, 10 * 86400, None) == 86400  # a dead feed: not above max_interval
    assert base_interval(p, 600, ttl=3600) == 3600  # the feed's own ttl is a lower bound


def test_jitter_spreads_within_ten_percent() -> None:
    rng = random.Random(7)
    values = [jittered(1000, rng) for _ in range(500)]
    assert min(values) >= 900 and max(values) <= 1100
    assert max(values) - min(values) > 150  # actually spread, not constant


def test_rate_learning_from_dates_then_observations() -> None:
    dates = [NOW - timedelta(hours=h) for h in range(0, 48, 2)]  # 24 items over 46 h
    first = learn_rate(None, 24, None, dates)
    assert first is not None and 11 < first < 13.5
    busy = learn_rate(first, new_items=10, since_last_poll=3600, published=[])
    assert busy > first  # 10 items in an hour pulls the estimate up
    quiet = learn_rate(first, new_items=0, since_last_poll=86400, published=[])
    assert quiet < first
    assert learn_rate(None, 1, None, [NOW]) is None  # one date says nothing about a rate


def test_learned_interval() -> None:
    assert learned_interval(None) is None
    assert learned_interval(48) == 900  # two polls per expected item
    assert learned_interval(0) == MAX_BACKOFF


def test_error_backoff_doubles_and_caps() -> None:
    assert error_backoff(900, 1) == 900
    assert error_backoff(900, 2) == 1800
    assert error_backoff(900, 3) == 3600
    assert error_backoff(900, 30) == MAX_BACKOFF


def test_digest_period_end_fixed_and_daily() -> None:
    assert period_end(DigestSpec(every=3600), NOW) == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    lisbon = DigestSpec(at=(8, 0), tz="Europe/Lisbon")
    # 10:17 UTC in March is 10:17 in Lisbon: the next 08:00 is tomorrow.
    assert period_end(lisbon, NOW) == datetime(2026, 3, 11, 8, 0, tzinfo=UTC)
    early = datetime(2026, 7, 1, 5, 0, tzinfo=UTC)  # 06:00 in Lisbon (summer time)
    assert period_end(lisbon, early) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


def test_rate_estimate_is_steady_when_quiet_polls_count() -> None:
    """Polled every 15 minutes, 304s included: the estimate settles on the true rate."""
    for per_day in (1, 48):
        rate = learn_rate(None, 0, None, [NOW - timedelta(days=i / per_day) for i in range(20)])
        every = 96 // per_day
        seen: list[float] = []
        for _day in range(20):
            for poll in range(96):
                rate = learn_rate(rate, 1 if poll % every == 0 else 0, 900, [])
                assert rate is not None
                seen.append(rate)
        last_day = seen[-96:]
        mean = sum(last_day) / len(last_day)
        assert 0.8 * per_day <= mean <= 1.25 * per_day, (per_day, mean)
        assert (
            max(last_day) < 2 * per_day and min(last_day) > per_day / 2
        )  # no drift, bounded swing
