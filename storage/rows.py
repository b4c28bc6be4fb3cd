"""What both backends share: column lists, rows to dataclasses, input checks, identities.

Rows come in as mappings of column name to the driver's value; each backend passes its own
converters for times and JSON (SQLite stores text, PostgreSQL ``timestamptz`` and ``jsonb``), so
the mapping itself is written once.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from storage.base import (
    TABLES,
    Article,
    ColumnKind,
    DaemonInfo,
    Delivery,
    DeliveryOutcome,
    FeedState,
    FeedUpdate,
    StorageError,
    TableName,
)

TimeIn = Callable[[Any], datetime | None]
JsonIn = Callable[[Any], Any]

# FeedUpdate fields that keep the stored value when left as ``...``.
OPTIONAL_FEED_FIELDS = (
    "etag",
    "last_modified",
    "body_hash",
    "url",
    "title",
    "disabled",
    "retry_after",
    "interval",
    "items_per_day",
    "ttl",
)
TIME_FEED_FIELDS = frozenset({"retry_after"})

FEED_COLUMNS = (
    "f.id, f.key, f.url, COALESCE(f.name, f.title) AS display_name, f.title, f.etag, "
    "f.last_modified, f.body_hash, f.last_poll, f.last_success, f.next_poll, f.http_status, "
    "f.error_count, f.last_error, f.disabled, f.retry_after, f.interval, f.items_per_day, "
    "f.ttl, f.total_items, f.extra, f.lease_owner, f.lease_until, f.last_polled_by"
)
ARTICLE_COLUMNS = (
    "a.id, a.feed_id, a.guid, a.url, a.canonical_url, a.title, a.summary, a.body, a.author, "
    "a.published, a.language, a.extract_error, a.fetched_at, "
    "COALESCE(f.name, f.title) AS feed_name"
)
DELIVERY_COLUMNS = (
    "d.alert_id, d.channel, d.state, d.attempts, d.next_attempt, d.created_at, "
    "d.first_attempt, d.last_attempt, d.last_status, d.last_error, d.delivered_at, "
    "d.lease_until, d.lease_owner"
)
DAEMON_COLUMNS = "id, host, pid, version, started_at, heartbeat_at, alive_until, stopped_at"
DAEMON_KEEP_DAYS = 7  # stopped or dead daemons are listed this long, then forgotten


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_identity() -> str:
    """A daemon id: host, pid and a random token (a recycled pid is told apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def split_identity(identity: str) -> tuple[str, int]:
    head, _, _token = identity.rpartition(":")
    host, _, pid = head.rpartition(":")
    return host, int(pid) if pid.isdigit() else 0


def _req(t: TimeIn, value: Any) -> datetime:
    parsed = t(value)
    assert parsed is not None  # NOT NULL column
    return parsed


class Row(Protocol):
    """A result row read by column name (``sqlite3.Row``, psycopg's ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


def feed_from_row(row: Row, t: TimeIn, j: JsonIn) -> FeedState:
    try:
        extra = j(row["extra"]) if row["extra"] else {}
    except ValueError:
        extra = {}
    return FeedState(
        id=row["id"],
        key=row["key"],
        url=row["url"],
        name=row["display_name"],
        title=row["title"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        last_poll=t(row["last_poll"]),
        last_success=t(row["last_success"]),
        next_poll=t(row["next_poll"]),
        http_status=row["http_status"],
        error_count=row["error_count"],
        last_error=row["last_error"],
        disabled=row["disabled"],
        retry_after=t(row["retry_after"]),
        interval=row["interval"],
        items_per_day=row["items_per_day"],
        ttl=row["ttl"],
        total_items=row["total_items"],
        extra=extra if isinstance(extra, dict) else {},
        lease_owner=row["lease_owner"],
        lease_until=t(row["lease_until"]),
        last_polled_by=row["last_polled_by"],
    )


def feed_order(feed: FeedState) -> tuple[bool, datetime, int]:
    """Claim order: never-polled first, then longest overdue, then oldest row."""
    return (feed.next_poll is not None, feed.next_poll or datetime.min.replace(tzinfo=UTC), feed.id)


def article_from_row(row: Row, t: TimeIn) -> Article:
    return Article(
        id=row["id"],
        feed_id=row["feed_id"],
        guid=row["guid"],
        url=row["url"],
        canonical_url=row["canonical_url"],
        title=row["title"],
        summary=row["summary"],
        body=row["body"],
        author=row["author"],
        published=t(row["published"]),
        language=row["language"],
        extract_error=row["extract_error"],
        fetched_at=_req(t, row["fetched_at"]),
        feed_name=row["feed_name"],
    )


def delivery_from_row(row: Row, t: TimeIn, j: JsonIn, with_payload: bool = False) -> Delivery:
    delivery = Delivery(
        alert_id=row["alert_id"],
        channel=row["channel"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt=_req(t, row["next_attempt"]),
        created_at=_req(t, row["created_at"]),
        first_attempt=t(row["first_attempt"]),
        last_attempt=t(row["last_attempt"]),
        last_status=row["last_status"],
        last_error=row["last_error"],
        delivered_at=t(row["delivered_at"]),
        lease_until=t(row["lease_until"]),
        lease_owner=row["lease_owner"],
    )
    if with_payload:
        delivery.payload = j(row["payload"])
        delivery.watchlist = row["watchlist"]
    return delivery


def delivery_order(d: Delivery) -> tuple[datetime, datetime, str]:
    return (d.next_attempt, d.created_at, d.alert_id)


def daemon_from_row(row: Row, t: TimeIn) -> DaemonInfo:
    return DaemonInfo(
        id=row["id"],
        host=row["host"],
        pid=row["pid"],
        version=row["version"],
        started_at=_req(t, row["started_at"]),
        heartbeat_at=_req(t, row["heartbeat_at"]),
        alive_until=_req(t, row["alive_until"]),
        stopped_at=t(row["stopped_at"]),
    )


def dump_payload(alert_id: str, payload: dict[str, Any]) -> str:
    """The payload as compact JSON; anything not JSON-serialisable is the caller's bug."""
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"alert {alert_id}: payload is not JSON-serialisable: {exc}") from exc


def check_outcome(o: DeliveryOutcome) -> None:
    """Bad outcomes are the caller's bug: a ValueError before anything is written."""
    if o.state not in ("delivered", "pending", "failed"):
        raise ValueError(
            f"delivery outcome state must be delivered, pending or failed: {o.state!r}"
        )
    if o.state == "pending" and o.next_attempt is None:
        raise ValueError(f"a retry outcome needs next_attempt (alert {o.alert_id})")


def distinct_runs(keys: Sequence[Hashable]) -> list[list[int]]:
    """Split positions into consecutive runs in which no key repeats.

    A batch that names one row twice must apply its changes in order; one set-based statement
    per run does that (a row appears at most once per statement).
    """
    runs: list[list[int]] = [[]]
    seen: set[Hashable] = set()
    for i, key in enumerate(keys):
        if key in seen:
            runs.append([])
            seen = set()
        seen.add(key)
        runs[-1].append(i)
    return runs if runs[0] else []


def feed_update_fields(update: FeedUpdate) -> dict[str, Any]:
    """The optional fields this update sets (``...`` ones are left out)."""
    return {
        name: getattr(update, name)
        for name in OPTIONAL_FEED_FIELDS
        if getattr(update, name) is not ...
    }


def table_spec(table: TableName) -> tuple[tuple[str, ...], tuple[tuple[str, ColumnKind], ...]]:
    """Key columns and typed columns of a copyable table; anything else is a ValueError."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    return TABLES[table]
