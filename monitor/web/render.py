"""Templates (Jinja2, autoescaped) and the filters they use: every article field is text.

Titles, snippets and bodies come from the open web: they reach the page only through Jinja's
autoescaping or through ``marked``, which escapes each piece itself and adds only ``<mark>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from markupsafe import Markup, escape

from monitor.deliver.render import clean_line
from monitor.humanize import ago


def iso(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if dt else ""


def marked(text: str | None, marks: Sequence[tuple[int, int]] = ()) -> Markup:
    """``text`` escaped, with the ``marks`` spans in ``<mark>``."""
    text = text or ""
    out: list[str] = []
    pos = 0
    for a, b in sorted(marks):
        if a < pos or b > len(text) or a >= b:
            continue
        out.append(str(escape(text[pos:a])))
        out.append(f"<mark>{escape(text[a:b])}</mark>")
        pos = b
    out.append(str(escape(text[pos:])))
    return Markup("".join(out))


def highlight(snippet: str | None, found: str | None) -> Markup:
    """An alert's snippet with the text that matched marked (its first occurrence)."""
    snippet = snippet or ""
    if found:
        i = snippet.lower().find(found.lower())
        if i >= 0:
            return marked(snippet, [(i, i + len(found))])
    return marked(snippet)


def safe_href(url: Any) -> str | None:
    """A link target only for http(s) URLs: a feed's ``javascript:`` link stays text."""
    if not isinstance(url, str):
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None


def one_line(value: Any, limit: int | None = None) -> str:
    return clean_line(value, limit)


def paragraphs(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split("\n") if p.strip()]


def query(base: dict[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from the page's parameters with some changed (None drops one)."""
    merged = {**base, **changes}
    return "?" + urlencode({k: v for k, v in merged.items() if v not in (None, "")})


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    h: float
    label: str


def bars(values: Sequence[int], labels: Sequence[str], height: float = 60.0) -> list[Bar]:
    """Geometry of a small SVG bar chart (no script, no inline style)."""
    top = max(values, default=0) or 1
    out = []
    for i, (v, label) in enumerate(zip(values, labels, strict=True)):
        h = round(height * v / top, 1)
        out.append(Bar(x=i * 10.0, y=round(height - h, 1), h=h, label=f"{label}: {v}"))
    return out


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor.web", "templates"),
        autoescape=True,  # every template: article fields are hostile
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ago=ago,
        iso=iso,
        marked=marked,
        highlight=highlight,
        safe_href=safe_href,
        one_line=one_line,
        paragraphs=paragraphs,
    )
    env.globals.update(query=query)
    return env
