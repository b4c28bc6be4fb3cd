"""Article pages -> main text and metadata, with trafilatura, in the process pool.

Comments, navigation, sidebars and footers are left out, so a watchlist never matches page chrome.

The steps, cheapest first:

1. The page is parsed once. Page chrome (``<nav>``, ``<aside>``, ``<form>``, a ``<header>`` or
   ``<footer>`` outside an ``<article>``, ARIA navigation/banner/complementary/contentinfo roles)
   is removed, except an element that holds most of the page's text: on broken or unusual markup
   (ASP.NET pages wrapped in one ``<form>``, an unclosed ``<header>``) that element holds the
   article itself.
2. trafilatura's fast path extracts the main text. Paragraphs, list items and headings that are
   short and mostly link text ("Read more: ...", related stories) are links elsewhere, not the
   article, and are dropped.
3. A thin result (under ``THIN_TEXT``) is redone by trafilatura's full cascade (its fallback
   extractors readability and jusText, which rescue unusual layouts). Its result wins when it
   holds most of the fast result (it found more of the same text) or is several times longer (the
   fast path found only a fragment); a text that is merely longer and different is other text
   of the page (comments, a menu, an error message) and the short fast result stays. Nor does
   it win when it is mostly the text of chrome that step 1 kept for its size (a mega menu).

``bench/extract_eval.py`` measures each step on trafilatura's evaluation set; the figures, and
how much each rule adds, are in docs/benchmarks.md ("Extraction quality").
"""

from __future__ import annotations

import configparser
import copy
import functools
import re
from datetime import UTC, datetime
from typing import Any

from monitor.models import Extracted

# Pages beyond this many elements are pathological for extraction; trafilatura then prunes them.
MAX_TREE_SIZE = 60_000
# Page chrome removed before extraction. trafilatura already skips it when it finds an article;
# pruning first also keeps it out of its last-resort fallback on pages with little text.
PRUNE_TAGS = frozenset({"nav", "aside", "form"})
PRUNE_OUTSIDE_ARTICLE = frozenset({"footer", "header"})  # an article's own are kept
PRUNE_ROLES = frozenset({"navigation", "complementary", "contentinfo", "banner"})
# An element holding more than this share of the page's text is never pruned, whatever its tag;
# if it also holds most of the page's paragraphs and is at least RETAG_MIN characters (not
# counting whitespace) long, it is the article's container and is made a plain <div> (_prune).
PRUNE_MAX_SHARE = 0.5
RETAG_MIN = 200
# A block (paragraph, list item, heading, quote) of fewer characters than this whose text is
# more than LINK_SHARE link text points elsewhere and is not part of the article.
LINK_BLOCK_MAX = 300
LINK_SHARE = 0.7
# A fast-path result shorter than this (characters) is redone with trafilatura's fallbacks.
THIN_TEXT = 1000
# That result replaces the fast one if it keeps at least KEEP_SHARE of it (it found more of the
# same text), or if it is at least REPLACE_RATIO times as long (the fast path found a fragment, a
# caption or a teaser); otherwise it is other text of the page (comments, a menu, an error
# message), longer but wrong, and the short fast result stays.
KEEP_SHARE = 0.5
REPLACE_RATIO = 5

_LANG_RE = re.compile(
    rb"<html[^>]*\blang\s*=\s*[\"']?([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?", re.IGNORECASE
)
# What trafilatura's load_html cleans up before parsing (trafilatura.utils).
_CONTROL = bytes(range(0x09)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20))
_DOCTYPE = re.compile(rb"^< ?! ?DOCTYPE[^>]*/[^<>]*>", re.IGNORECASE)
_COMMENT_ID = re.compile(r"[Cc]omment(?!ary)|comol")
_COMMENTS_ID = re.compile(r"(?:[Cc]omment(?!ary)|comol|disqus_thread|dsq-comments)")
_COMMENTS_CLASS = re.compile(r"^[Cc]omment(?!ary)|(?:article|post)-comments")
_NOT_TEXT = ("script", "style", "noscript", "template")
_BLOCKS = ("p", "item", "head", "quote")


class ExtractError(Exception):
    """No article text could be extracted; the message says why, in plain words."""


def extract_article(
    html: bytes, url: str, title: str | None = None, metadata: bool = False
) -> Extracted:
    """Extract the main text of one page. Pure and synchronous: runs inside a worker process.

    ``title`` is the headline already known from the feed (dropped from the body if the page
    repeats it). Page metadata (title, author, date) costs more than the text itself, so it is
    read only when asked: the pipeline needs the page's date only when the feed gives none.
    """
    import trafilatura

    if not html or html.isspace():
        raise ExtractError("empty page")
    tree = _parse(html)
    if tree is None:
        raise ExtractError("no article text found on the page")
    meta = None
    if metadata:  # read from the whole page: pruning drops headers that hold bylines and dates
        try:
            meta = trafilatura.extract_metadata(
                tree,
                default_url=url,
                extensive=_config().getboolean("DEFAULT", "EXTENSIVE_DATE_SEARCH"),
            )
        except (TypeError, ValueError):  # what trafilatura itself treats as no metadata
            meta = None
    big_chrome = _prune(tree, forum=b"DiscussionForumPosting" in html)

    def run(page: Any, fast: bool) -> str:
        # trafilatura works on its own copy of the tree, so passes share one parse.
        doc = trafilatura.bare_extraction(page, options=_extractor(fast))
        return _article_text(getattr(doc, "body", None))

    text = run(tree, fast=True)
    if len(text) < THIN_TEXT:
        slow = run(tree, fast=False)
        if (
            len(slow) >= REPLACE_RATIO * len(text) or _kept_share(text, slow) >= KEEP_SHARE
        ) and not (big_chrome and _kept_share(slow, _all_text(big_chrome)) >= KEEP_SHARE):
            text = slow  # it found much more, or more of the same text, and not the page chrome
    page_title = (getattr(meta, "title", None) or "").strip() or None
    headline = page_title or (title or "").strip()
    first, _, rest = text.partition("\n")
    if headline and first.strip() == headline and rest.strip():
        text = rest.strip()  # the headline is the article's title, not its body
    if not text:
        raise ExtractError("no article text found on the page")
    language = None
    if m := _LANG_RE.search(html[:4096]):
        language = m.group(1).decode("ascii").lower()
    return Extracted(
        text=text,
        title=page_title,
        author=(getattr(meta, "author", None) or None),
        published=_parse_date(getattr(meta, "date", None)),
        language=language,
    )


def trafilatura_options(fast: bool) -> dict[str, Any]:
    """The options feedwatch passes to ``trafilatura.bare_extraction`` (bench/ reuses them).

    Links are kept in the result only so that link-heavy blocks can be told apart. No URL: it
    would only make link targets absolute, which nothing here reads.
    """
    return {
        "fast": fast,
        "with_metadata": False,
        "include_comments": False,
        "include_tables": True,
        "include_images": False,
        "include_links": True,
        "deduplicate": False,
        "config": _config(),
    }


@functools.cache
def _extractor(fast: bool) -> Any:
    """``trafilatura_options`` built once per process (reading them from the config costs more
    than a tenth of a millisecond per call); trafilatura never changes an Extractor it is given."""
    from trafilatura.settings import Extractor

    o = trafilatura_options(fast)
    return Extractor(
        config=o["config"],
        output_format="python",
        fast=fast,
        comments=o["include_comments"],
        tables=o["include_tables"],
        images=o["include_images"],
        links=o["include_links"],
        dedup=o["deduplicate"],
        with_metadata=o["with_metadata"],
    )


def _parse(html: bytes) -> Any:
    """The page's tree, as trafilatura's ``load_html`` would build it, in half the time for the
    usual page (uncompressed, valid UTF-8, no control characters): that one skips the attempts to
    decompress it and a regular expression over the whole text. Anything else goes to it."""
    from lxml.etree import LxmlError
    from lxml.html import fromstring
    from trafilatura.utils import HTML_PARSER, load_html

    start = html[:1024].lstrip()
    if (
        start[:1] == b"<"
        and len(html.translate(None, _CONTROL)) == len(html)
        and b"\xef\xbf\xbe" not in html
        and b"\xef\xbf\xbf" not in html
        and not any(b"<html" in ln and ln.endswith(b"/>") for ln in start.splitlines()[:4])
    ):
        try:
            html.decode("utf-8")
            first, nl, rest = html.partition(b"\n")
            if _DOCTYPE.match(first):  # what load_html removes (an lxml bug with such doctypes)
                html = _DOCTYPE.sub(b"", first, count=1) + nl + rest
            tree = fromstring(html, parser=HTML_PARSER)
        except (UnicodeDecodeError, ValueError, LxmlError):
            tree = None
        if tree is not None and len(tree) >= 2:
            return tree
    return load_html(html)


def _article_text(body: Any) -> str:
    """The text of trafilatura's result tree without the blocks that are mostly links, unless
    those make up most of it (then the links are what the page has to say)."""
    if body is None:
        return ""
    from lxml.etree import strip_tags
    from trafilatura.xml import xmltotxt

    drop, dropped = [], 0
    for block in body.iter(*_BLOCKS):
        if block.find(".//ref") is None:
            continue
        size = _solid_len("".join(block.itertext()))
        if 0 < size < LINK_BLOCK_MAX:
            links = sum(_solid_len("".join(r.itertext())) for r in block.iter("ref"))
            if links > LINK_SHARE * size:
                drop.append(block)
                dropped += size
    if drop and dropped < _solid_len("".join(body.itertext())) / 2:
        for block in drop:
            _remove(block)
    strip_tags(body, "ref")
    text = xmltotxt(body, False).strip()
    if "  " in text or "\t" in text:  # spacing left around the links, as trafilatura trims it
        text = "\n".join(line for ln in text.splitlines() if (line := " ".join(ln.split())))
    return text


def _kept_share(first: str, second: str) -> float:
    """How much of ``first`` (by characters, line by line) is also in ``second``; whitespace is
    ignored, extractors space text differently."""
    flat = "".join(second.split())
    lines = ["".join(ln.split()) for ln in first.splitlines()]
    total = sum(len(ln) for ln in lines)
    return sum(len(ln) for ln in lines if ln in flat) / total if total else 0.0


def _all_text(elements: list[Any]) -> str:
    return "\n".join(el.text_content() for el in elements)


def _remove(el: Any) -> None:
    """Remove ``el`` and its subtree, keeping the text that follows it."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        prev = el.getprevious()
        if prev is None:
            parent.text = (parent.text or "") + el.tail
        else:
            prev.tail = (prev.tail or "") + el.tail
    parent.remove(el)


def _text_len(el: Any) -> int:
    """Characters of text under ``el`` but whitespace (indentation would make menus look long)
    and scripts and styles."""
    n = _solid_len(el.text_content())
    for hidden in el.iter(*_NOT_TEXT):
        n -= _solid_len(hidden.text_content())
    return n


def _solid_len(text: str) -> int:
    return len(text) - text.count(" ") - text.count("\n") - text.count("\t") - text.count("\r")


def _is_chrome(el: Any) -> bool:
    tag = el.tag
    if tag in PRUNE_TAGS or el.get("role") in PRUNE_ROLES:
        return True
    return tag in PRUNE_OUTSIDE_ARTICLE and not any(a.tag == "article" for a in el.iterancestors())


def _prune(tree: Any, forum: bool = False) -> list[Any]:
    """Remove page chrome, except an element that holds most of the page's text (more than
    ``PRUNE_MAX_SHARE``): that one is the page's content, wrapped in odd markup.

    Forms are judged last, against the text that is left, as trafilatura does: a page may sit in
    one ``<form>`` (ASP.NET) beside a big menu. A kept element that holds most of the page's
    paragraphs, and is long enough to be an article, becomes a plain ``<div>``, or trafilatura
    would still delete it as an ``<aside>`` or a ``<nav>``; any other (a mega menu, the sidebar of
    a page with next to no text) stays what it is, for trafilatura to drop; those are returned.

    Reader comments go too (but on a forum thread, whose posts look like comments): trafilatura
    finds and drops them itself, with regular expressions run over the whole tree; removed
    here, by the same rules, they no longer cost it that walk, nor its later ones.
    """
    body = tree.find(".//body")
    if body is None:
        body = tree
    removed: set[Any] = set()  # lxml keeps a removed element's descendants in the document

    def gone(el: Any) -> bool:
        return any(a in removed for a in el.iterancestors())

    forms, kept = [], []
    limit = _text_len(body) * PRUNE_MAX_SHARE
    for el in _candidates(tree):  # document order: an element comes before its descendants
        if not _is_chrome(el) or gone(el):
            continue
        if el.tag == "form" and el.get("role") not in PRUNE_ROLES:
            forms.append(el)
        elif _judge(el, limit, body, removed):
            kept.append(el)
    if forms:
        limit = _text_len(body) * PRUNE_MAX_SHARE
        for el in forms:
            if not gone(el) and _judge(el, limit, body, removed):
                kept.append(el)
    if not forum:
        for el in _comment_sections(body):
            if not gone(el) and _text_len(el) <= limit:
                _remove(el)
                removed.add(el)
    return kept


def _judge(el: Any, limit: float, body: Any, removed: set[Any]) -> bool:
    """Remove chrome ``el``, or make it content; True when it stays the chrome it looks like."""
    if (size := _text_len(el)) <= limit:
        _remove(el)
        removed.add(el)
    elif size >= RETAG_MIN and 2 * _paragraphs_len(el) >= _paragraphs_len(body):
        el.tag = "div"  # the article's container: keep trafilatura from deleting it by its tag
        el.attrib.pop("role", None)
    else:
        return True
    return False


def _comment_sections(body: Any) -> list[Any]:
    """Comment containers as trafilatura knows them (its REMOVE_COMMENTS_AND_LISTS_XPATH)."""
    found = []
    for el in body.iter("div", "section", "details", "ol", "ul"):
        ident, cls = el.get("id"), el.get("class")
        if (ident and (_COMMENT_ID if el.tag in ("ol", "ul") else _COMMENTS_ID).match(ident)) or (
            cls and _COMMENTS_CLASS.search(cls)
        ):
            found.append(el)
    return found


def _paragraphs_len(el: Any) -> int:
    return sum(_solid_len(p.text_content()) for p in el.iter("p"))


@functools.cache
def _candidates_xpath() -> Any:
    from lxml.etree import XPath

    tags = sorted(PRUNE_TAGS | PRUNE_OUTSIDE_ARTICLE)
    return XPath("|".join(f"//{t}" for t in tags) + "|//*[@role]")


def _candidates(tree: Any) -> Any:
    return _candidates_xpath()(tree)


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
