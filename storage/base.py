"""The storage interface: every piece of persistent state, behind one Protocol.

The daemon only talks to ``Storage``; SQLite (``storage.sqlite``) implements it first, PostgreSQL
later implements the same methods. Nothing here imports ``monitor``. Times are timezone-aware UTC
``datetime`` objects throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

DeliveryState = Literal["pending", "in_flight", "delivered", "failed"]


class StorageError(Exception):
    """The database could not be opened, migrated or written."""


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A feed as configured; ``key`` (the configured URL) is its identity across restarts."""

    key: str
    name: str | None = None
    fingerprint: str | None = (
        None  # of the feed's config entry; a change re-enables a disabled feed
    )


@dataclass(slots=True)
class FeedState:
    """What feedwatch remembers about a feed between polls and restarts."""

    id: int
    key: str  # the URL as configured: stable identity
    url: str  # the URL polled now (changes after a 301/308)
    name: str | None = None  # configured name, else the feed's own title
    title: str | None = None  # the feed's own title
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None  # detects unchanged bodies from servers without validators
    last_poll: datetime | None = None
    last_success: datetime | None = None
    next_poll: datetime | None = None  # None = due now
    http_status: int | None = None
    error_count: int = 0  # consecutive failures; a success resets it
    last_error: str | None = None
    disabled: str | None = None  # reason (e.g. "410 Gone"); None = enabled
    retry_after: datetime | None = None  # server asked us to wait until then
    interval: float | None = None  # learned interval for `interval: auto`, seconds
    items_per_day: float | None = None  # moving estimate of the publishing rate
    ttl: float | None = None  # feed's own ttl / sy:updatePeriod hint, seconds
    total_items: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class FeedUpdate:
    """The outcome of one poll, applied atomically to a feed's state.

    Fields left as ``UNSET`` keep their stored value.
    """

    last_poll: datetime
    next_poll: datetime
    http_status: int | None = None
    ok: bool = True  # False increments error_count; True resets it
    error: str | None = None
    etag: Any = ...
    last_modified: Any = ...
    body_hash: Any = ...
    url: Any = ...  # new URL after a permanent redirect
    title: Any = ...
    disabled: Any = ...
    retry_after: Any = ...
    interval: Any = ...
    items_per_day: Any = ...
    ttl: Any = ...


@dataclass(slots=True)
class NewArticle:
    """An article about to be stored, with the alerts its match produced."""

    feed_id: int
    guid: str | None
    url: str | None
    canonical_url: str | None
    title: str
    summary: str = ""
    body: str = ""
    author: str | None = None
    published: datetime | None = None
    language: str | None = None
    extract_error: str | None = None  # why the body is the feed summary, if it is
    fetched_at: datetime | None = None
    alerts: list[NewAlert] = field(default_factory=list)


@dataclass(slots=True)
class NewAlert:
    """One alert for one watchlist; its outbox rows (one per channel) are written with it."""

    id: str  # stable for (watchlist, article): the webhook-id
    watchlist: str
    payload: dict[str, Any]  # the contract's webhook payload, stored as JSON
    channels: list[str]
    # per channel: the earliest time to send (a digest channel waits for its period's end)
    not_before: dict[str, datetime] = field(default_factory=dict)


@dataclass(slots=True)
class Article:
    id: int
    feed_id: int
    guid: str | None
    url: str | None
    canonical_url: str | None
    title: str
    summary: str
    body: str
    author: str | None
    published: datetime | None
    language: str | None
    extract_error: str | None
    fetched_at: datetime
    feed_name: str | None = None


@dataclass(slots=True)
class Delivery:
    """One (alert, channel) row of the outbox."""

    alert_id: str
    channel: str
    state: DeliveryState
    attempts: int
    next_attempt: datetime
    created_at: datetime
    first_attempt: datetime | None = None
    last_attempt: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    lease_until: datetime | None = None
    payload: dict[str, Any] | None = None  # the alert's payload, joined in on claim
    watchlist: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one send of a claimed row ended, to be written with others in one transaction.

    ``state`` is ``delivered`` (final), ``pending`` (a retry due at ``next_attempt``) or
    ``failed`` (kept, replayable); ``at`` is when the attempt ended.
    """

    alert_id: str
    channel: str
    state: Literal["delivered", "pending", "failed"]
    at: datetime
    status: int | None = None
    error: str | None = None
    next_attempt: datetime | None = None  # required for ``pending``


@dataclass(slots=True)
class AlertRecord:
    id: str
    watchlist: str
    article_id: int
    created_at: datetime
    payload: dict[str, Any]
    deliveries: list[Delivery] = field(default_factory=list)


class Storage(Protocol):
    """Persistent state. Implementations are safe to share within one event loop."""

    # -- lifecycle
    async def open(self) -> None:
        """Connect and apply pending migrations (never destructive)."""

    async def close(self) -> None: ...

    async def schema_version(self) -> int: ...

    async def recover_in_flight(self, now: datetime) -> int:
        """At start: take back deliveries left in flight by a dead predecessor (due ``now``)."""

    # -- feeds
    async def sync_feeds(self, feeds: list[FeedSpec]) -> dict[str, FeedState]:
        """Make a row for every configured feed (new ones due now); return state by key.

        Feeds no longer configured are kept (their articles and alerts stay) but not returned.
        """

    async def get_feed(self, key: str) -> FeedState | None: ...

    async def list_feeds(self, keys: list[str] | None = None) -> list[FeedState]: ...

    async def due_feeds(self, now: datetime, keys: list[str], limit: int) -> list[FeedState]:
        """Enabled feeds among ``keys`` whose next_poll and retry_after have passed, oldest first."""

    async def update_feed(self, feed_id: int, update: FeedUpdate) -> None: ...

    async def update_feeds(self, updates: list[tuple[int, FeedUpdate]]) -> None:
        """Apply many polls' outcomes (``update_feed`` each) in one transaction: all or none."""

    async def set_feed_disabled(self, key: str, reason: str | None) -> None:
        """Disable (reason) or re-enable (None) a feed; re-enabling makes it due now."""

    # -- articles and alerts
    async def known_items(
        self, feed_id: int, guids: list[str], canonical_urls: list[str]
    ) -> tuple[set[str], set[str]]:
        """Which of these GUIDs (in this feed) and canonical URLs (anywhere) are stored already."""

    async def add_articles(self, articles: list[NewArticle]) -> list[int | None]:
        """Store articles with their alerts and outbox rows, each in one transaction.

        Returns the new article id, or None where the article was already stored (same GUID in
        the feed, or same canonical URL anywhere): its alerts are then not written either.
        """

    async def get_article(self, article_id: int) -> Article | None: ...

    async def articles_since(self, since: datetime, limit: int = 10000) -> list[Article]: ...

    async def prune_text(self, before: datetime, batch: int = 5000) -> int:
        """Drop the body and summary of articles fetched before ``before``; keep their identity
        (GUID, canonical URL, title) so a reappearing old story never alerts twice."""

    # -- outbox
    async def claim_deliveries(
        self, channel: str, now: datetime, limit: int, lease: float
    ) -> list[Delivery]:
        """Atomically take due rows (pending and due, or in flight with an expired lease).

        Claimed rows become ``in_flight`` with ``lease_until = now + lease`` and one more attempt.
        A process that dies mid-send leaves the lease to expire; the next claim retries the row.
        """

    async def mark_delivered(
        self, alert_id: str, channel: str, status: int | None, at: datetime
    ) -> None: ...

    async def mark_retry(
        self,
        alert_id: str,
        channel: str,
        next_attempt: datetime,
        status: int | None,
        error: str,
        at: datetime,
    ) -> None: ...

    async def mark_failed(
        self, alert_id: str, channel: str, status: int | None, error: str, at: datetime
    ) -> None: ...

    async def record_outcomes(self, outcomes: list[DeliveryOutcome]) -> list[bool]:
        """Apply many sends' outcomes in order, in one transaction (all or none).

        Each is what ``mark_delivered``/``mark_retry``/``mark_failed`` would do; returns, per
        outcome, whether it was applied (False: the row was already delivered, or is missing).
        """

    async def release_deliveries(self, rows: list[Delivery]) -> int:
        """Undo this process's claims of rows it never sent: pending again, due as before.

        The attempt the claim counted is taken back (and ``first_attempt`` when the claim set
        it). A row whose lease was meanwhile taken by another claim is left alone. Returns the
        count released.
        """

    async def next_delivery_time(self, channels: list[str]) -> datetime | None:
        """The earliest next_attempt (or lease expiry) among undelivered rows of these channels."""

    async def ping(self) -> None:
        """Raise StorageError unless the database answers a trivial query."""

    async def outbox_summary(self) -> tuple[int, datetime | None]:
        """Undelivered rows (pending or in flight) and the creation time of the oldest."""

    async def pending_count(self, channels: list[str] | None = None) -> int:
        """Rows neither delivered nor failed."""

    async def get_alert(self, alert_id: str) -> AlertRecord | None: ...

    async def list_alerts(
        self,
        since: datetime | None = None,
        failed_only: bool = False,
        limit: int = 1000,
        alert_id: str | None = None,
    ) -> list[AlertRecord]: ...

    async def requeue(
        self, alert_id: str | None = None, failed: bool = False, now: datetime | None = None
    ) -> int:
        """Make failed (or, by id, any undelivered-or-failed) rows pending again; return the count."""
