"""The storage interface: every piece of persistent state, behind one Protocol.

The daemon only talks to ``Storage``; SQLite (``storage.sqlite``) and PostgreSQL
(``storage.postgres``) implement the same methods with the same meaning, checked by one contract
test suite (``tests/storage_contract``). Nothing here imports ``monitor``. Times are
timezone-aware UTC ``datetime`` objects throughout.

Several daemons may share one database (PostgreSQL): work is handed out by leases. A lease names
its owner (a daemon id, ``host:pid:token``) and runs until ``lease_until``; it is free again once
it runs out, or at once when its owner's registration in ``daemons`` has lapsed (a daemon that
stops renewing it with ``heartbeat`` is taken for dead).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

DeliveryState = Literal["pending", "in_flight", "delivered", "failed"]
# How a process uses the database (see ``Storage.open``).
Role = Literal["daemon", "command", "readonly"]
ROLES: tuple[Role, ...] = ("daemon", "command", "readonly")


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
    lease_owner: str | None = None  # the daemon polling it now (see ``claim_feeds``)
    lease_until: datetime | None = None
    last_polled_by: str | None = None  # the daemon that recorded the last poll's outcome


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
    # Stories (monitor/stories): this article's ref, the story it joins (its own ref for a new
    # story), its signature and LSH keys. None/empty: the article belongs to no story.
    story_ref: int | None = None
    story_id: int | None = None
    story_sig: bytes | None = None
    story_keys: list[int] = field(default_factory=list)


@dataclass(slots=True)
class NewAlert:
    """One alert for one watchlist; its outbox rows (one per channel) are written with it."""

    id: str  # stable for (watchlist, article): the webhook-id
    watchlist: str
    payload: dict[str, Any]  # the contract's webhook payload, stored as JSON
    channels: list[str]
    # per channel: the earliest time to send (a digest channel waits for its period's end)
    not_before: dict[str, datetime] = field(default_factory=dict)
    kind: Literal["match", "also_reported"] = "match"
    story_alert_id: str | None = None  # also_reported: the story's alert it is attached to
    # Stored instead when ``id`` exists already: a story's first alert that another copy of the
    # story stored first (in another poll or daemon) becomes that alert's also_reported copy,
    # so the race between two copies decides which one alerts, and loses neither.
    if_exists: NewAlert | None = None
    # Set by storage: ``id`` existed, so ``if_exists`` (if any) was written instead.
    taken: bool = False


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
    lease_owner: str | None = None
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
    kind: str = "match"
    story_alert_id: str | None = None
    copies: list[AlertRecord] = field(default_factory=list)  # also_reported, oldest first


@dataclass(frozen=True, slots=True)
class StoryRow:
    """A stored article as the story index needs it."""

    story_ref: int
    story_id: int
    signature: bytes
    published: datetime


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One article found by ``search_articles``, with a snippet to show."""

    article_id: int
    feed_id: int
    feed_key: str
    feed_name: str | None
    title: str
    url: str | None
    published: datetime | None
    fetched_at: datetime
    rank: float  # higher is better; 0.0 when listing without a query
    snippet: str  # plain text, about 200 characters, "…" where cut
    marks: tuple[tuple[int, int], ...] = ()  # [start, end) of each query term in ``snippet``
    title_marks: tuple[tuple[int, int], ...] = ()  # the same in ``title``
    watchlists: tuple[str, ...] = ()  # watchlists that alerted on this article


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One failed poll of a feed (``feed_events``: the newest 50 per feed are kept)."""

    feed_id: int
    at: datetime
    http_status: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ActivityHour:
    """What happened in one hour (``hour`` is its start): for the dashboard's chart."""

    hour: datetime
    polls: int = 0
    poll_errors: int = 0
    new_articles: int = 0
    alerts: int = 0


@dataclass(frozen=True, slots=True)
class ExtractFailures:
    """A feed's articles stored with the feed's summary instead of their page's text."""

    feed_id: int
    count: int
    last_error: str  # the reason of the newest one
    last_at: datetime


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """One daemon process registered in the database (``register_daemon``)."""

    id: str  # "host:pid:token": also the owner written on the leases it takes
    host: str
    pid: int
    version: str | None
    started_at: datetime
    heartbeat_at: datetime
    alive_until: datetime  # taken for dead after this unless renewed by ``heartbeat``
    stopped_at: datetime | None = None  # set by ``unregister_daemon`` (a clean stop)

    def alive(self, now: datetime) -> bool:
        return self.stopped_at is None and self.alive_until > now


# Tables as ``copy_storage`` moves them, in an order that satisfies foreign keys, each with its
# key columns (rows are exported in key order) and every column with its kind. Both backends
# have exactly these columns; ``export_rows``/``import_rows`` speak in these Python values:
# int, float, str, datetime (``time``), dict (``json``), None.
ColumnKind = Literal["int", "real", "text", "time", "json", "bytes"]
TableName = Literal["feeds", "articles", "story_keys", "alerts", "deliveries"]
TABLES: dict[TableName, tuple[tuple[str, ...], tuple[tuple[str, ColumnKind], ...]]] = {
    "feeds": (
        ("id",),
        (
            ("id", "int"), ("key", "text"), ("url", "text"), ("name", "text"),
            ("title", "text"), ("etag", "text"), ("last_modified", "text"),
            ("body_hash", "text"), ("last_poll", "time"), ("last_success", "time"),
            ("next_poll", "time"), ("http_status", "int"), ("error_count", "int"),
            ("last_error", "text"), ("disabled", "text"), ("retry_after", "time"),
            ("interval", "real"), ("items_per_day", "real"), ("ttl", "real"),
            ("total_items", "int"), ("extra", "json"), ("created_at", "time"),
            ("config_hash", "text"), ("lease_owner", "text"), ("lease_until", "time"),
            ("last_polled_by", "text"),
        ),
    ),
    "articles": (
        ("id",),
        (
            ("id", "int"), ("feed_id", "int"), ("guid", "text"), ("url", "text"),
            ("canonical_url", "text"), ("title", "text"), ("summary", "text"),
            ("body", "text"), ("author", "text"), ("published", "time"),
            ("language", "text"), ("extract_error", "text"), ("fetched_at", "time"),
            ("story_ref", "int"), ("story_id", "int"), ("story_sig", "bytes"),
        ),
    ),
    "story_keys": (
        ("key", "story_ref"),
        (("key", "int"), ("story_ref", "int"), ("published", "time")),
    ),
    "alerts": (
        ("id",),
        (
            ("id", "text"), ("watchlist", "text"), ("article_id", "int"),
            ("created_at", "time"), ("payload", "json"), ("kind", "text"),
            ("story_alert_id", "text"),
        ),
    ),
    "deliveries": (
        ("alert_id", "channel"),
        (
            ("alert_id", "text"), ("channel", "text"), ("state", "text"),
            ("attempts", "int"), ("next_attempt", "time"), ("lease_until", "time"),
            ("first_attempt", "time"), ("last_attempt", "time"), ("last_status", "int"),
            ("last_error", "text"), ("delivered_at", "time"), ("created_at", "time"),
            ("lease_owner", "text"),
        ),
    ),
}  # fmt: skip


class Storage(Protocol):
    """Persistent state. Implementations are safe to share within one event loop.

    Every method raises ``StorageError`` when the database cannot do it (unreachable, locked,
    full, constraint broken), never a driver's own exception; callers retry later.
    """

    @property
    def identity(self) -> str:
        """This instance's daemon id, ``host:pid:token``: the owner of the leases it takes.

        Unique per instance (two instances in one process are two daemons), stable for its life.
        """
        ...

    @property
    def description(self) -> str:
        """Where the data lives, safe to log (a PostgreSQL URL with its password masked)."""
        ...

    # -- lifecycle
    async def open(self, role: Role = "command") -> None:
        """Connect and prepare the database for ``role``; idempotent.

        ``command`` (one-shot writers: ``alerts retry``, ``enable``): creates the database if
        needed and applies pending migrations (never destructive). ``daemon``: the same, and on
        SQLite takes the file exclusively (a second daemon gets a ``StorageError`` naming the
        first; one-shot commands still work beside it) and takes back the leases any earlier
        process left behind. ``readonly`` (``status``, ``alerts``, ``search``, ``web``): never
        creates, migrates or writes anything; a missing database or one whose schema is older
        or newer than this version is a ``StorageError`` saying so.
        """

    async def close(self) -> None: ...

    async def schema_version(self) -> int: ...

    async def inspect(self) -> list[str]:
        """Before opening: what would stop a daemon from using this database (unwritable,
        not a feedwatch database, unreachable, a newer schema), changing nothing."""

    async def ping(self, timeout: float = 5.0) -> None:
        """A trivial query within ``timeout`` seconds; ``StorageError`` when it cannot answer."""

    # -- daemons
    async def register_daemon(self, now: datetime, version: str, ttl: float) -> DaemonInfo:
        """Record this instance (``identity``) as a running daemon, alive until ``now + ttl``."""

    async def heartbeat(self, now: datetime, ttl: float) -> None:
        """Keep this daemon alive until ``now + ttl``; call well within ``ttl``.

        Once its registration lapses, other daemons take over its feed leases and its
        deliveries in flight at their next claim.
        """

    async def unregister_daemon(self, now: datetime) -> None:
        """A clean stop: mark this daemon stopped and hand back what it still holds.

        Its feed leases are released and its deliveries still in flight become pending, due at
        once (a send cut short is repeated, with the same ``webhook-id``).
        """

    async def list_daemons(self) -> list[DaemonInfo]:
        """Every registered daemon, newest first (stopped and dead ones too, for a week)."""

    # -- feeds
    async def sync_feeds(self, feeds: list[FeedSpec]) -> dict[str, FeedState]:
        """Make a row for every configured feed (new ones due now); return state by key.

        Feeds no longer configured are kept (their articles and alerts stay) but not returned.
        """

    async def get_feed(self, key: str) -> FeedState | None: ...

    async def list_feeds(self, keys: list[str] | None = None) -> list[FeedState]: ...

    async def claim_feeds(
        self,
        now: datetime,
        keys: list[str],
        limit: int,
        lease_seconds: float,
        owner: str | None = None,
        exclude: Collection[int] = (),
    ) -> list[FeedState]:
        """Atomically take up to ``limit`` feeds due for a poll, leased to ``owner``.

        Due: among ``keys``, enabled, next_poll and retry_after passed, and not leased (no
        lease, an expired one, one whose owner's registration lapsed, or one ``owner`` holds
        itself: a daemon knows which of its polls are in flight, and names them in
        ``exclude``, feed ids never taken, so a claim does not lease them again). Never-polled and
        longest-overdue first. The lease (``owner``, default ``identity``, until ``now +
        lease_seconds``) keeps every other claim off the feed; the poll's outcome
        (``update_feed``) releases it. Two daemons never get the same feed from one round.
        """

    async def update_feed(self, feed_id: int, update: FeedUpdate) -> None:
        """Record a poll's outcome: sets ``last_polled_by`` to ``identity``, clears the lease.

        The poll is counted in its hour (``activity``); a failed one (``ok`` False) is also
        kept in the feed's error history (``feed_events``)."""

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
        """Store articles with their alerts and outbox rows, all in one transaction.

        Returns the new article id, or None where the article was already stored (same GUID in
        the feed, or same canonical URL anywhere, also earlier in this batch): its alerts are
        then not written either. An alert id stored already is left alone (no new outbox rows).
        """

    async def get_article(self, article_id: int) -> Article | None: ...

    # -- stories
    async def story_candidates(
        self, keys: list[int], since: datetime, until: datetime
    ) -> list[StoryRow]:
        """Stored articles published in [since, until] sharing one of ``keys`` (any daemon's)."""

    async def story_rows(self, since: datetime, limit: int = 500_000) -> list[StoryRow]:
        """Every article with a story published since ``since`` (to rebuild the index)."""

    async def existing_alerts(self, ids: list[str]) -> set[str]:
        """Which of these alert ids are stored already."""

    async def last_story_alert(
        self, watchlist: str, story_id: int
    ) -> tuple[str, bytes | None, dict[str, Any]] | None:
        """The story's latest ``match`` alert for ``watchlist``: (id, the alerted article's
        story signature, its payload), or None."""

    async def prune_story_keys(self, before: datetime) -> int:
        """Forget the LSH keys of articles published before ``before`` (past every window)."""

    async def articles_since(self, since: datetime, limit: int = 10000) -> list[Article]: ...

    async def extract_failures(self, since: datetime) -> dict[int, ExtractFailures]:
        """Per feed id, the articles fetched since ``since`` whose page gave no text (timed
        out, crashed its worker, could not be fetched): ``status`` shows them."""

    async def prune_text(self, before: datetime, batch: int = 5000) -> int:
        """Drop the body and summary of articles fetched before ``before``; keep their identity
        (GUID, canonical URL, title) so a reappearing old story never alerts twice. The search
        index follows: a pruned article is found by its title only."""

    # -- search and the dashboard's reads
    async def search_articles(
        self,
        query: str | None,
        *,
        feed_keys: list[str] | None = None,
        watchlist: str | None = None,
        since: datetime | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[SearchHit]:
        """Articles matching ``query`` (``storage.search`` syntax), best first; without a
        query (None or blank), every article, newest first. Filters: fetched at or after
        ``since``, in one of ``feed_keys``, alerted by ``watchlist``. A malformed query raises
        ``storage.search.QueryError`` (never a database error)."""

    async def feed_events(self, feed_id: int, limit: int = 50) -> list[FeedEvent]:
        """A feed's failed polls, newest first (every failed ``update_feed(s)`` writes one)."""

    async def activity(self, since: datetime, until: datetime) -> list[ActivityHour]:
        """Every hour from ``since``'s to the one before ``until``'s: polls and failed polls
        recorded by ``update_feed(s)``, articles stored and alerts created in it."""

    async def alert_counts(self, since: datetime | None = None) -> dict[str, int]:
        """Alerts per watchlist (created at or after ``since``)."""

    async def delivery_counts(self) -> dict[str, int]:
        """Outbox rows per state (pending, in_flight, delivered, failed; zero ones included)."""

    # -- outbox
    async def claim_deliveries(
        self, channel: str, now: datetime, limit: int, lease: float, owner: str | None = None
    ) -> list[Delivery]:
        """Atomically take due rows: pending and due, or in flight with a lease that ran out
        (or whose owner's registration lapsed).

        Claimed rows become ``in_flight``, leased to ``owner`` (default ``identity``) until
        ``now + lease``, with one more attempt. Each row goes to one claim only, across
        processes. A process that dies mid-send leaves the lease to expire; a later claim
        retries the row.
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
        """Undo claims of rows never sent: pending again, due as before.

        The attempt the claim counted is taken back (and ``first_attempt`` when the claim set
        it). A row whose lease was meanwhile taken by another claim is left alone. Returns the
        count released.
        """

    async def next_delivery_time(self, channels: list[str]) -> datetime | None:
        """The earliest next_attempt (or lease expiry) among undelivered rows of these channels."""

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
        *,
        watchlist: str | None = None,
        article_id: int | None = None,
        offset: int = 0,
    ) -> list[AlertRecord]:
        """Story alerts (``match``) newest first, each with its deliveries and its ``copies``
        (the ``also_reported`` alerts attached to it, with theirs). ``failed_only``: a channel
        of the alert or of one of its copies failed. ``article_id``: that article's alerts,
        of either kind (a copy's article has only its ``also_reported`` alert)."""

    async def requeue(
        self, alert_id: str | None = None, failed: bool = False, now: datetime | None = None
    ) -> int:
        """Make failed (or, by id, any undelivered-or-failed) rows pending again; return the count."""

    # -- bulk copy (``storage.copy``)
    async def count_rows(self, table: TableName) -> int: ...

    async def export_rows(
        self, table: TableName, after: tuple[Any, ...] | None, limit: int
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` rows of ``table`` (every column of ``TABLES``) after key ``after``,
        in key order."""

    async def import_rows(self, table: TableName, rows: list[dict[str, Any]]) -> int:
        """Insert exported rows as they are (ids kept) in one transaction; return the count.

        A row whose key exists already is an error. Id sequences move past the imported ids.
        """

    async def clear_all(self) -> None:
        """Delete every feed, article, alert and delivery (``copy_storage(replace=True)``)."""
