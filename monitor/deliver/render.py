"""Channel-neutral reading of alert payloads, shared by every channel's formatter.

Payloads come from storage as plain dicts in the contract's webhook shape. They are read
defensively here (missing or odd-typed fields never raise) and every article string is reduced
to one line without control characters, so no channel can be fooled by a title holding CR/LF,
ANSI escapes or bidi overrides. Each channel then applies its own escaping (Slack, HTML, ...).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

# C0/C1 controls, DEL, line/paragraph separators, bidi embeddings/overrides/isolates, BOM.
_CONTROL_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_SPACE_RE = re.compile(r"\s+")
# Whole ANSI/VT escape sequences (CSI, OSC, two-byte ESC x), dropped before lone controls.
_ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")

UNTITLED = "(untitled)"


def clean_line(value: Any, limit: int | None = None) -> str:
    """``value`` as one printable line: controls become spaces, whitespace runs collapse."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    text = _SPACE_RE.sub(" ", _CONTROL_RE.sub(" ", text)).strip()
    return clip(text, limit) if limit is not None else text


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending in an ellipsis when shortened."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[:limit]
    return text[: limit - 1].rstrip() + "…"


def safe_url(value: Any) -> str | None:
    """The URL when it is a plain http(s) URL fit to be a link target, else None."""
    url = clean_line(value)
    if not url or url != str(value).strip() or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` allowed) as an aware datetime, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def format_time(value: Any) -> str:
    """``2024-01-03 10:00 UTC`` for an ISO time; the cleaned text when unparseable; "" if none."""
    dt = parse_time(value)
    if dt is None:
        return clean_line(value, 64)
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True, slots=True)
class MatchView:
    kind: str
    term: str
    text: str
    snippet: str


@dataclass(frozen=True, slots=True)
class AlertView:
    """One payload, cleaned for display. ``url`` is None unless it is a safe http(s) link."""

    id: str
    watchlist: str
    title: str
    url: str | None
    raw_url: str
    feed: str
    published: str  # formatted, "" when unknown
    summary: str
    matches: tuple[MatchView, ...]
    kind: str = "match"  # match | also_reported
    story_alert_id: str | None = None  # a copy's (or an update's) story alert

    @property
    def terms(self) -> list[str]:
        """Distinct configured terms that matched, in order."""
        return list(dict.fromkeys(m.term for m in self.matches if m.term))

    @property
    def found(self) -> list[str]:
        """Distinct matched texts as found in the article, in order."""
        return list(dict.fromkeys(m.text for m in self.matches if m.text))

    @property
    def first_snippet(self) -> MatchView | None:
        return next((m for m in self.matches if m.snippet), None)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def view(payload: Mapping[str, Any]) -> AlertView:
    """Read one contract payload without trusting its shape."""
    payload = _mapping(payload)
    article = _mapping(payload.get("article"))
    raw_matches = payload.get("matches")
    matches: list[MatchView] = []
    if isinstance(raw_matches, list):
        for m in raw_matches[:100]:
            m = _mapping(m)
            matches.append(
                MatchView(
                    kind=clean_line(m.get("kind"), 32) or "match",
                    term=clean_line(m.get("term"), 200),
                    text=clean_line(m.get("text"), 200),
                    snippet=clean_line(m.get("snippet"), 600),
                )
            )
    kind = "also_reported" if payload.get("type") == "also_reported" else "match"
    title = clean_line(article.get("title"), 500) or UNTITLED
    if kind == "also_reported":
        title = f"Also reported: {title}"
    elif payload.get("update_of"):
        change = clean_line(payload.get("change"), 200)
        title = f"Update ({change}): {title}" if change else f"Update: {title}"
    return AlertView(
        kind=kind,
        story_alert_id=clean_line(payload.get("alert_id") or payload.get("update_of"), 200) or None,
        id=clean_line(payload.get("id"), 200),
        watchlist=clean_line(payload.get("watchlist"), 200) or "(no watchlist)",
        title=title,
        url=safe_url(article.get("url")),
        raw_url=clean_line(article.get("url"), 2000),
        feed=clean_line(article.get("feed"), 200),
        published=format_time(article.get("published")),
        summary=clean_line(article.get("summary"), 1000),
        matches=tuple(matches),
    )


def split_highlight(snippet: str, text: str) -> list[tuple[str, bool]]:
    """``snippet`` cut into (part, is_match) pieces; the first occurrence of ``text`` is marked.

    The comparison ignores case; when the text is not in the snippet, nothing is marked.
    """
    if not text or not snippet:
        return [(snippet, False)] if snippet else []
    idx = snippet.find(text)
    if idx < 0:
        low, ltext = snippet.lower(), text.lower()
        if len(low) == len(snippet) and len(ltext) == len(text):
            idx = low.find(ltext)
    if idx < 0:
        return [(snippet, False)]
    end = idx + len(text)
    parts = [(snippet[:idx], False), (snippet[idx:end], True), (snippet[end:], False)]
    return [p for p in parts if p[0]]


def group_by_watchlist(views: Iterable[AlertView]) -> dict[str, list[AlertView]]:
    """Alerts grouped by watchlist, groups and alerts in first-seen order."""
    groups: dict[str, list[AlertView]] = {}
    for v in views:
        groups.setdefault(v.watchlist, []).append(v)
    return groups


def digest_id(alerts: Sequence[Mapping[str, Any]]) -> str:
    """A stable id for a digest: the same set of alert ids always gives the same id."""
    ids = sorted(str(_mapping(a).get("id", "")) for a in alerts)
    return "digest_" + hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()[:32]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def scrub(text: str, secrets: Iterable[str], limit: int = 300) -> str:
    """One readable line with every secret replaced by ``***``."""
    line = clean_line(text)
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        line = line.replace(secret, "***")
    return clip(line, limit)
