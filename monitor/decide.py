"""What happens after a poll, decided from plain data with ``now`` passed in. No I/O, no clock.

The pipeline performs the I/O (fetch, parse, extract, store) and carries out what these
functions decide: when the feed is polled next, whether it backs off, is disabled (410 Gone) or
must wait for the server (Retry-After), how its publishing rate is learned, which of its items
are new, which pages are worth fetching, and which items are too old to alert. Tests drive them
as tables of cases (tests/test_decide.py).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from monitor.schedule import (
    IntervalPolicy,
    after,
    base_interval,
    error_backoff,
    jittered,
    learn_rate,
    learned_interval,
)
from storage.base import FeedState, FeedUpdate

MAX_SERVER_WAIT = 7 * 86400.0  # a Retry-After is honoured for a week at most


class Failure(Protocol):
    """What went wrong with a poll (``monitor.models.FetchError`` is one)."""

    kind: str
    status: int | None
    retry_after: float | None

    def __str__(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Success:
    """What a successful poll saw."""

    status: int | None
    new_items: int = 0  # items stored for the first time
    dates: Sequence[datetime] = ()  # the items' own dates (rate learning)
    ttl: float | None = None  # the source's own ttl / update period hint, seconds
    unchanged: bool = False  # 304, or the same body (or links) as last time


def after_success(
    state: FeedState,
    policy: IntervalPolicy,
    now: datetime,
    seen: Success,
    rng: random.Random | None = None,
) -> FeedUpdate:
    """The feed's next poll after a success: its interval (fixed, or learned for ``auto``) with
    jitter; every success counts for rate learning, 304s included, so quiet polls pull the
    estimate down as surely as new items push it up."""
    ttl = seen.ttl if seen.ttl is not None else state.ttl
    interval = base_interval(policy, state.interval, ttl)
    update = FeedUpdate(last_poll=now, next_poll=after(now, jittered(interval, rng)))
    update.http_status = seen.status
    since = (now - state.last_success).total_seconds() if state.last_success else None
    rate = learn_rate(state.items_per_day, seen.new_items, since, list(seen.dates))
    update.items_per_day = rate
    if policy.interval == "auto":
        learned = learned_interval(rate)
        update.interval = learned
        update.next_poll = after(now, jittered(base_interval(policy, learned, ttl), rng))
    return update


def after_failure(
    state: FeedState,
    policy: IntervalPolicy,
    now: datetime,
    failure: Failure,
    rng: random.Random | None = None,
) -> FeedUpdate:
    """Back off exponentially per consecutive failure; 410 Gone disables the feed; a server that
    named a time (Retry-After) is not asked before it, by anyone, `run --once` included."""
    errors = state.error_count + 1
    interval = base_interval(policy, state.interval, state.ttl)
    update = FeedUpdate(
        last_poll=now, next_poll=after(now, jittered(error_backoff(interval, errors), rng))
    )
    update.http_status = failure.status
    update.ok = False
    update.error = str(failure)
    if failure.kind == "gone":
        update.disabled = "410 Gone: the server says this feed was removed"
    elif failure.kind == "rate_limited" and failure.retry_after is not None:
        # Without Retry-After a 429/503 is a plain backoff.
        wait = min(max(failure.retry_after, 1.0), MAX_SERVER_WAIT)
        update.retry_after = after(now, wait)
        update.next_poll = max(update.next_poll, update.retry_after)
    return update


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a poll, as far as deciding goes: its identity and its own date."""

    guid: str | None
    canonical: str | None
    published: datetime | None


def fresh(items: Sequence[Item], known_guids: set[str], known_urls: set[str]) -> list[int]:
    """Indexes of the items not stored yet (same GUID in the feed, or same canonical URL
    anywhere, is the same article)."""
    return [
        i
        for i, it in enumerate(items)
        if not (it.guid and it.guid in known_guids)
        and not (it.canonical and it.canonical in known_urls)
    ]


@dataclass(frozen=True, slots=True)
class PagePlan:
    extract: list[int]  # fetch and extract these pages
    too_old: list[int]  # older than max_age by their own date: they can never alert
    capped: list[int]  # over the per-poll page budget: they keep the source's summary


def plan_pages(items: Sequence[Item], now: datetime, max_age: float, cap: int) -> PagePlan:
    """Which new items' pages to fetch: none that can never alert, at most ``cap`` of the rest
    (a source of 20,000 undated items must not cost 20,000 page fetches in one poll)."""
    old: list[int] = []
    recent: list[int] = []
    for i, it in enumerate(items):
        (old if too_old(it.published, now, max_age) else recent).append(i)
    return PagePlan(extract=recent[:cap], too_old=old, capped=recent[cap:])


def too_old(published: datetime | None, now: datetime, max_age: float) -> bool:
    """Older than ``max_age`` (seconds): stored, never alerted. A date in the future counts as
    now (sloppy feeds stamp ahead); no date at all is not too old."""
    if published is None:
        return False
    return now - min(published, now) > timedelta(seconds=max_age)
