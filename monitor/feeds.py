"""What a configured feed looks like from outside: its name, its state, its next poll.

Shared by the daemon and by `status` (and the dashboard), so all of them say the same thing,
and kept free of heavy imports: `feedwatch status` must not load the fetcher or the matcher.
"""

from __future__ import annotations

from datetime import datetime

from monitor.settings import FeedConfig
from storage.base import FeedState


def feed_display_name(feed: FeedConfig, state: FeedState | None) -> str:
    """The configured name, else the feed's own title, else its URL."""
    return feed.name or (state.title if state and state.title else None) or feed.url


def poll_time(state: FeedState) -> datetime | None:
    """When a feed is next polled: its next poll, or later if the server asked us to wait."""
    t = state.next_poll
    if state.retry_after and (t is None or state.retry_after > t):
        t = state.retry_after
    return t


def is_due(state: FeedState, now: datetime) -> bool:
    if state.disabled:
        return False
    t = poll_time(state)
    return t is None or t <= now


def feed_health(state: FeedState) -> str:
    """ok, failing or disabled: the `feedwatch_feeds{state}` and `status` classification."""
    if state.disabled:
        return "disabled"
    return "failing" if state.error_count else "ok"


class UnknownFeed(ValueError):
    """A feed name or tag the config does not have."""


def select_feeds(feeds: list[FeedConfig], names: list[str], tags: list[str]) -> list[str] | None:
    """The keys of the configured feeds given by name (or URL) or by tag, for search filters;
    None when neither is given (every feed). An unknown name or tag is an ``UnknownFeed``."""
    from monitor.urls import feed_key

    if not names and not tags:
        return None
    keys: dict[str, None] = {}
    for name in names:
        found = [f for f in feeds if name in (f.name, f.url, feed_key(f.url))]
        if not found:
            raise UnknownFeed(f"no configured feed named {name!r} (give its name or URL)")
        keys.update((feed_key(f.url), None) for f in found)
    for tag in tags:
        found = [f for f in feeds if tag in f.tags]
        if not found:
            raise UnknownFeed(f"no configured feed has the tag {tag!r}")
        keys.update((feed_key(f.url), None) for f in found)
    return list(keys)
