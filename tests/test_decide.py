"""What happens after a poll, as tables of cases: pure functions of plain data and ``now``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from monitor import decide
from monitor.schedule import MAX_BACKOFF, IntervalPolicy
from storage.base import FeedState

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIXED = IntervalPolicy(900.0, 300.0, 86400.0, 900.0)
AUTO = IntervalPolicy("auto", 300.0, 86400.0, 900.0)


class NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return 0.0


@dataclass
class Failed:
    kind: str
    status: int | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.status}"


def state(**kw: object) -> FeedState:
    return FeedState(id=1, key="https://f.example/rss", url="https://f.example/rss", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("errors_before", "failure", "next_in", "disabled", "retry_after_in"),
    [
        (0, Failed("http", 500), 900, None, None),  # first failure: one interval
        (1, Failed("http", 500), 1800, None, None),  # then doubling
        (3, Failed("timeout"), 7200, None, None),
        (20, Failed("dns"), MAX_BACKOFF, None, None),  # capped at a day
        (0, Failed("gone", 410), 900, "410 Gone: the server says this feed was removed", None),
        (0, Failed("rate_limited", 429, retry_after=3600), 3600, None, 3600),  # server's time
        (0, Failed("rate_limited", 429, retry_after=60), 900, None, 60),  # backoff is longer
        (0, Failed("rate_limited", 503, retry_after=None), 900, None, None),  # plain backoff
        (0, Failed("rate_limited", 429, retry_after=30 * 86400), 7 * 86400, None, 7 * 86400),
        (0, Failed("rate_limited", 429, retry_after=-5), 900, None, 1),  # unusable: at least 1 s
    ],
)
def test_after_a_failure(
    errors_before: int,
    failure: Failed,
    next_in: float,
    disabled: str | None,
    retry_after_in: float | None,
) -> None:
    u = decide.after_failure(state(error_count=errors_before), FIXED, NOW, failure, NoJitter())
    assert u.ok is False and u.error == str(failure) and u.http_status == failure.status
    assert u.next_poll == NOW + timedelta(seconds=next_in)
    assert (u.disabled if u.disabled is not ... else None) == disabled
    expected = NOW + timedelta(seconds=retry_after_in) if retry_after_in is not None else ...
    assert u.retry_after == expected


@pytest.mark.parametrize(
    ("policy", "before", "seen", "next_in", "rate"),
    [
        # fixed interval: every success waits the interval; rate learning still runs
        (FIXED, {}, decide.Success(200, 2), 900, None),
        # the first estimate comes from the items' own dates: 4 items 1 hour apart = 24/day
        (
            AUTO,
            {},
            decide.Success(200, 4, [NOW - timedelta(hours=h) for h in (0, 1, 2, 3)]),
            86400 / 24 / 2,
            24.0,
        ),
        # a quiet 304 after a day pulls a 48/day estimate down by half
        (
            AUTO,
            {"items_per_day": 48.0, "last_success": NOW - timedelta(days=1)},
            decide.Success(304, 0, unchanged=True),
            86400 / 24 / 2,
            24.0,
        ),
        # a feed's ttl is a lower bound for `auto`
        (AUTO, {"items_per_day": 480.0, "ttl": 3600.0}, decide.Success(200, 0), 3600, 480.0),
        # a dead-quiet feed is polled at most daily
        (
            AUTO,
            {"items_per_day": 0.0, "last_success": NOW - timedelta(days=1)},
            decide.Success(200, 0),
            86400,
            0.0,
        ),
    ],
)
def test_after_a_success(
    policy: IntervalPolicy,
    before: dict[str, object],
    seen: decide.Success,
    next_in: float,
    rate: float | None,
) -> None:
    u = decide.after_success(state(**before), policy, NOW, seen, NoJitter())
    assert u.ok is True and u.last_poll == NOW and u.http_status == seen.status
    assert u.next_poll == NOW + timedelta(seconds=next_in)
    assert (u.items_per_day if u.items_per_day is not ... else None) == pytest.approx(rate)


def test_jitter_spreads_feeds_within_ten_percent() -> None:
    rng = random.Random(1)
    gaps = [
        (
            decide.after_success(state(), FIXED, NOW, decide.Success(200), rng).next_poll - NOW
        ).total_seconds()
        for _ in range(200)
    ]
    assert min(gaps) >= 810 and max(gaps) <= 990 and len(set(gaps)) > 100


def test_which_items_are_new() -> None:
    items = [
        decide.Item("g1", "https://a/1", None),
        decide.Item("g2", "https://a/2", None),  # known by GUID in this feed
        decide.Item(None, "https://a/3", None),  # known by URL anywhere
        decide.Item("g4", None, None),
    ]
    assert decide.fresh(items, {"g2"}, {"https://a/3"}) == [0, 3]


def test_page_plan_skips_what_can_never_alert_and_caps_the_rest() -> None:
    old = NOW - timedelta(days=5)
    items = [
        decide.Item("a", None, old),
        decide.Item("b", None, None),  # undated: not too old
        decide.Item("c", None, NOW + timedelta(hours=3)),  # in the future: counts as now
        decide.Item("d", None, NOW - timedelta(hours=1)),
        decide.Item("e", None, NOW - timedelta(hours=2)),
    ]
    plan = decide.plan_pages(items, NOW, max_age=48 * 3600, cap=2)
    assert plan.too_old == [0] and plan.extract == [1, 2] and plan.capped == [3, 4]
    assert decide.plan_pages(items, NOW, 48 * 3600, 0).extract == []


@pytest.mark.parametrize(
    ("published", "too_old"),
    [(None, False), (NOW, False), (NOW - timedelta(hours=47), False),
     (NOW - timedelta(hours=49), True), (NOW + timedelta(days=3), False)],
)  # fmt: skip
def test_too_old(published: datetime | None, too_old: bool) -> None:
    assert decide.too_old(published, NOW, 48 * 3600) is too_old
