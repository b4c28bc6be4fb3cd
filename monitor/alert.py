"""The alert a receiver gets: one typed object, built here and nowhere else.

The pipeline, `feedwatch test-alert`, the console and the tests all build alerts with these
classes, and ``to_json()`` is the contract's webhook payload exactly (keys, order, types), so
what is sent cannot drift from what is documented. Everything that reaches a receiver is
bounded here too (title, summary, snippet lengths) and the fields that come from the config
(feed name, matched term) have secrets masked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from monitor.logs import redact

TITLE_MAX = 500
SUMMARY_MAX = 1_000  # in the payload; storage keeps more
SNIPPET_MAX = 600


def alert_id(watchlist: str, article_identity: str) -> str:
    """Stable per (watchlist, article): it is the webhook-id receivers deduplicate on."""
    digest = hashlib.sha256(f"{watchlist}\x00{article_identity}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def iso_z(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class ArticleInfo:
    url: str | None
    title: str
    published: datetime | None
    feed: str
    summary: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "title": clip(self.title, TITLE_MAX),
            "published": iso_z(self.published),
            "feed": redact(clip(self.feed, TITLE_MAX)),  # a name may come from ${VAR}
            "summary": clip(self.summary, SUMMARY_MAX),
        }


@dataclass(frozen=True, slots=True)
class MatchInfo:
    kind: str  # keyword | place | require
    term: str  # as configured (masked if it came from ${VAR})
    text: str  # as found in the article
    snippet: str

    def to_json(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "term": redact(self.term),
            "text": self.text,
            "snippet": clip(self.snippet, SNIPPET_MAX),
        }


@dataclass(frozen=True, slots=True)
class AlertPayload:
    """``{"type": "match", "id", "watchlist", "article": {...}, "matches": [...]}``"""

    id: str
    watchlist: str
    article: ArticleInfo
    matches: tuple[MatchInfo, ...] = field(default_factory=tuple)
    type: Literal["match"] = "match"
    # `realert_on: update`: the story's earlier alert, and what changed (an addition to the
    # contract's payload; receivers that do not know these keys ignore them).
    update_of: str | None = None
    change: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "id": self.id,
            "watchlist": self.watchlist,
            "article": self.article.to_json(),
            "matches": [m.to_json() for m in self.matches],
        }
        if self.update_of:
            out["update_of"] = self.update_of
            out["change"] = self.change
        return out


@dataclass(frozen=True, slots=True)
class AlsoReported:
    """A later copy of a story already alerted: ``{"type": "also_reported", "id",
    "alert_id" (the story's alert), "watchlist", "article": {...}}``."""

    id: str
    alert_id: str
    watchlist: str
    article: ArticleInfo
    type: Literal["also_reported"] = "also_reported"

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "alert_id": self.alert_id,
            "watchlist": self.watchlist,
            "article": self.article.to_json(),
        }


def sample_alert(channel: str, now: datetime, nonce: str) -> AlertPayload:
    """What `feedwatch test-alert CHANNEL` sends: a real payload, obviously a test."""
    return AlertPayload(
        id=f"msg_test_{nonce}",
        watchlist="feedwatch-test",
        article=ArticleInfo(
            url="https://example.org/feedwatch-test-alert",
            title="Test alert from feedwatch",
            published=now,
            feed="feedwatch",
            summary=f"If you can read this, the channel {channel!r} works.",
        ),
        matches=(
            MatchInfo(
                kind="keyword",
                term="test*",
                text="test",
                snippet=f"This is a test alert sent by `feedwatch test-alert {channel}`.",
            ),
        ),
    )
