"""When to poll a feed next: fixed or learned intervals, jitter, error backoff. Pure functions."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.settings import DigestSpec

MAX_BACKOFF = 86400.0  # a failing feed is still tried at least once a day
JITTER = 0.1  # +-10 % spreads feeds that were due together


@dataclass(frozen=True, slots=True)
class IntervalPolicy:
    interval: float | str  # seconds, or "auto"
    min_interval: float
    max_interval: float
    start_interval: float  # used for "auto" until a rate is learned


def jittered(seconds: float, rng: random.Random | None = None) -> float:
    r = rng or random
    return seconds * (1 + r.uniform(-JITTER, JITTER))


def base_interval(policy: IntervalPolicy, learned: float | None, ttl: float | None) -> float:
    """The interval to use after a successful poll."""
    if policy.interval != "auto":
        return float(policy.interval)
    seconds = learned if learned is not None else policy.start_interval
    if ttl:  # the feed's own ttl / sy:updatePeriod is a lower bound: polling faster is rude
        seconds = max(seconds, ttl)
    return min(max(seconds, policy.min_interval), max(policy.max_interval, policy.min_interval))


def learn_rate(
    previous_per_day: float | None,
    new_items: int,
    since_last_poll: float | None,
    published: list[datetime],
) -> float | None:
    """Update the items-per-day estimate (an exponentially weighted moving average).

    The first estimate comes from the spread of the entries' own dates, so a restart or a new feed
    does not have to wait days to learn; later polls fold in how many new items appeared.
    """
    if previous_per_day is None:
        dates = sorted(d for d in published if d is not None)
        if len(dates) >= 2:
            span_days = max((dates[-1] - dates[0]).total_seconds() / 86400, 1 / 24)
            return (len(dates) - 1) / span_days
        return None
    if not since_last_poll or since_last_poll <= 0:
        return previous_per_day
    observed = new_items / (since_last_poll / 86400)
    weight = min(0.5, since_last_poll / 86400)  # a day's evidence counts half
    return previous_per_day * (1 - weight) + observed * weight


def learned_interval(items_per_day: float | None) -> float | None:
    """Poll about twice per expected new item: a busy feed every few minutes, a quiet one daily."""
    if items_per_day is None:
        return None
    if items_per_day <= 0:
        return MAX_BACKOFF
    return 86400 / items_per_day / 2


def error_backoff(interval: float, error_count: int) -> float:
    """Exponential backoff per consecutive failure, capped at a day."""
    return min(interval * (2 ** max(0, error_count - 1)), max(MAX_BACKOFF, interval))


def after(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


def period_end(spec: DigestSpec, now: datetime) -> datetime:
    """When the digest period containing ``now`` ends: alerts wait for it, then go as one message.

    Fixed periods are aligned to the epoch (``1h`` ends on the hour), so restarts do not shift them.
    """
    if spec.every is not None:
        epoch = now.timestamp()
        end = (epoch // spec.every + 1) * spec.every
        return datetime.fromtimestamp(end, tz=UTC)
    assert spec.at is not None
    tz = ZoneInfo(spec.tz)
    local = now.astimezone(tz)
    target = local.replace(hour=spec.at[0], minute=spec.at[1], second=0, microsecond=0)
    if target <= local:
        target = (local + timedelta(days=1)).replace(
            hour=spec.at[0], minute=spec.at[1], second=0, microsecond=0
        )
    return target.astimezone(UTC)
