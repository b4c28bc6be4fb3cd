"""Article pages -> main text and metadata, with trafilatura, in the process pool.

Comments, navigation, sidebars and footers are left out, so a watchlist never matches page chrome.
"""

from __future__ import annotations

import configparser
import copy
import functools
import re
from datetime import UTC, datetime

from monitor.models import Extracted

# Pages beyond this many elements are pathological for extraction; trafilatura then prunes them.
MAX_TREE_SIZE = 60_000
# Page chrome removed before extraction. trafilatura already skips it when it finds an article;
# pruning first also keeps it out of its last-resort fallback on pages with little text.
PRUNE_XPATH = [
    "//nav",
    "//aside",
    "//form",
    "//footer[not(ancestor::article)]",
    "//header[not(ancestor::article)]",
    '//*[@role="navigation" or @role="complementary" or @role="contentinfo" or @role="banner"]',
]
_LANG_RE = re.compile(
    rb"<html[^>]*\blang\s*=\s*[\"']?([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?", re.IGNORECASE
)


class ExtractError(Exception):
    """No article text could be extracted; the message says why, in plain words."""


# A result shorter than this (characters) from the fast path is re-done with trafilatura's
# fallback extractors (readability, jusText), which rescue unusual page layouts.
THIN_TEXT = 500


def extract_article(
    html: bytes, url: str, title: str | None = None, metadata: bool = False
) -> Extracted:
    """Extract the main text of one page. Pure and synchronous: runs inside a worker process.

    ``title`` is the headline already known from the feed (dropped from the body if the page
    repeats it). Page metadata (title, author, date) costs more than the text itself, so it is
    read only when asked: the pipeline needs the page's date only when the feed gives none.
    """
    import trafilatura

    if not html.strip():
        raise ExtractError("empty page")

    def run(fast: bool) -> object:
        return trafilatura.bare_extraction(
            html,
            url=url,
            fast=fast,
            with_metadata=metadata,
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            deduplicate=False,
            prune_xpath=PRUNE_XPATH,
            config=_config(),
        )

    doc = run(fast=True)
    text = _text(doc)
    if len(text) < THIN_TEXT:
        slow = run(fast=False)
        if len(_text(slow)) > len(text):
            doc, text = slow, _text(slow)
    page_title = (getattr(doc, "title", None) or "").strip() or None
    headline = page_title or (title or "").strip()
    first, _, rest = text.partition("\n")
    if headline and first.strip() == headline and rest.strip():
        text = rest.strip()  # the headline is the article's title, not its body
    if not text:
        raise ExtractError("no article text found on the page")
    language = getattr(doc, "language", None)
    if not language and (m := _LANG_RE.search(html[:4096])):
        language = m.group(1).decode("ascii").lower()
    return Extracted(
        text=text,
        title=page_title,
        author=(getattr(doc, "author", None) or None),
        published=_parse_date(getattr(doc, "date", None)),
        language=language,
    )


def _text(doc: object) -> str:
    return ((getattr(doc, "text", None) or "") if doc is not None else "").strip()


@functools.cache
def _config() -> configparser.ConfigParser:
    from trafilatura.settings import DEFAULT_CONFIG

    cfg = copy.deepcopy(DEFAULT_CONFIG)
    cfg["DEFAULT"]["MAX_TREE_SIZE"] = str(MAX_TREE_SIZE)
    # Time limits are ours (workers.py, SIGALRM); trafilatura's own would fight over the signal.
    cfg["DEFAULT"]["EXTRACTION_TIMEOUT"] = "0"
    return cfg


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
