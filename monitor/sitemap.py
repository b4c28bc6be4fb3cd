"""Sitemap bytes -> :class:`ParsedSitemap`. Pure and synchronous: the daemon runs it in a process pool.

Reads ``<urlset>`` sitemaps (with or without Google News ``<news:news>`` blocks), ``<sitemapindex>``
indexes and plain-text sitemaps (one URL a line), gzip-compressed or not: the gzip magic bytes
decide, since servers often send ``.xml.gz`` files with no ``Content-Encoding``.

Why it is written this way:

- Memory stays bounded on 50,000-URL sitemaps: lxml's pull parser is fed 64 KB at a time, gzip is
  inflated chunk by chunk, and each ``<url>`` is cleared and unlinked as soon as it is read.
- A body cut short (the fetcher stops at ``max_bytes``, or ``max_bytes`` stops the inflation here)
  yields every ``<url>`` that was complete before the cut and nothing of the one cut in half:
  that is how a huge sitemap is read within the size limit.
- Invalid XML (a bare ``&`` in a URL, ``&nbsp;`` in a title, stray control characters) is read
  in libxml2's recovery mode, so one bad byte does not cost the rest of the file.
- Odd dates never fail a sitemap: a date that cannot be read, lies more than a day ahead, or is
  before the web had news sites is None, as for feeds.
"""

from __future__ import annotations

import html
import html.entities
import re
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from feedparser.datetimes import _parse_date as feedparser_parse_date
from lxml import etree

from monitor.models import Entry, NotASitemap, ParsedSitemap, SitemapChild

FUTURE_SLACK = timedelta(days=1)  # the same slack the feed parser gives
EARLIEST = datetime(1994, 1, 1, tzinfo=UTC)  # an older "date" is a CMS default, not a date
DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # the sitemap protocol's own limit, uncompressed
GZIP_MAGIC = b"\x1f\x8b"

_CHUNK = 64 * 1024
_URL_TAGS = ("{*}url", "{*}sitemap", "{*}urlset", "{*}sitemapindex")
_ROOTS = {"urlset": "urlset", "sitemapindex": "index"}
_HTTP_URL_RE = re.compile(r"https?://(?:[^/?#@]*@)?[^/?#:@\[\]]+|https?://\[[0-9A-Fa-f:.]+\]", re.I)
# The first element of a document, after any prolog, comments, processing instructions, doctype.
_PROLOG_RE = re.compile(
    rb"\A(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*<([A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)",
    re.DOTALL,
)
_YEAR_MONTH_RE = re.compile(r"\A(\d{4})(?:-(\d{2}))?\Z")
_ISO_START_RE = re.compile(r"\A\d{4}-\d")


def parse_sitemap(
    body: bytes, url: str, now: datetime, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> ParsedSitemap:
    """Parse a sitemap or sitemap index fetched from ``url``; raise NotASitemap for anything else.

    ``url`` keeps the call shape of ``parse_feed``: sitemap locations must be absolute, so
    nothing is resolved against it (a relative ``<loc>`` is dropped, as search engines do).

    ``max_bytes`` bounds the uncompressed size of a gzip body: inflation stops there and the
    result is ``truncated``, like a plain body the fetcher cut at its own limit.
    """
    source = _Source(_inflate(body, max_bytes) if body[:2] == GZIP_MAGIC else _slices(body))
    chunks = iter(source)
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= 4096:
            break
    if not head.strip():
        if source.cut:
            raise NotASitemap(f"not a sitemap: {source.cut}")
        raise NotASitemap("empty response: no sitemap content")
    rest = _chain(head, chunks)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped.startswith(b"<"):
        return _parse_text(rest, source, now)
    m = _PROLOG_RE.match(stripped)
    root = m.group(2).decode("ascii", "replace") if m else ""
    if root not in _ROOTS:
        raise NotASitemap(_what_is(root, stripped))
    kind = _ROOTS[root]
    result = _parse_xml(rest, source, kind, now, strict_refs=False)
    if result is None:  # invalid XML: read again with every reference made numeric (see _AMP_RE)
        source = _Source(_inflate(body, max_bytes) if body[:2] == GZIP_MAGIC else _slices(body))
        result = _parse_xml(iter(source), source, kind, now, strict_refs=True)
    assert result is not None
    return result


def select_children(
    children: list[SitemapChild], *, limit: int = 3, since: datetime | None = None
) -> list[SitemapChild]:
    """The child sitemaps worth fetching this poll: newest first, at most ``limit``.

    With ``since`` (the last poll), only children modified after it, plus children with no
    ``lastmod`` (nothing says they did not change; conditional GET makes re-asking cheap).
    ``children`` must be in :func:`parse_sitemap`'s order (newest first, undated last).
    """
    if since is not None:
        children = [c for c in children if c.lastmod is None or c.lastmod > since]
    return children[: max(limit, 0)]


def parse_w3c_date(value: str | None, now: datetime) -> datetime | None:
    """A sitemap date (W3C datetime, and the RFC 822 and other forms found in the wild) -> UTC."""
    if not value:
        return None
    text = value.strip()
    when: datetime | None = None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        m = _YEAR_MONTH_RE.match(text)
        if m:  # "2024" or "2024-05": W3C allows them, fromisoformat does not
            try:
                when = datetime(int(m.group(1)), int(m.group(2) or 1), 1)
            except ValueError:
                return None
        elif _ISO_START_RE.match(text):
            return (
                None  # ISO-shaped but impossible (2024-02-30, 25:61): feedparser would roll it over
            )
        else:
            try:
                parsed = feedparser_parse_date(text)
            except Exception:  # feedparser's date handlers raise odd errors on odd input
                return None
            if not parsed:
                return None
            try:
                year, month, day, hour, minute, second = parsed[:6]
                when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except (TypeError, ValueError, OverflowError):
                return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when - now > FUTURE_SLACK or when < EARLIEST:
        return None
    return when


# --------------------------------------------------------------------------- bytes in


def _slices(body: bytes) -> Iterator[bytes]:
    view = memoryview(body)
    for start in range(0, len(body), _CHUNK):
        yield bytes(view[start : start + _CHUNK])


class _Cut(Exception):
    """The body ends early: max_bytes reached, or a gzip stream broken or cut off."""


class _Source:
    """The body's chunks; a cut (see _Cut) ends the iteration and is kept in ``cut``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.cut: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        except _Cut as exc:
            self.cut = str(exc)


def _inflate(body: bytes, max_bytes: int) -> Iterator[bytes]:
    """Inflate gzip members chunk by chunk, never holding more than one chunk of output.

    Raises _Cut (after yielding what it could) when the limit is hit or the stream is broken.
    """
    data = body
    total = 0
    while data[:2] == GZIP_MAGIC:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pos = 0
        while True:
            try:
                if d.unconsumed_tail:
                    out = d.decompress(d.unconsumed_tail, _CHUNK)
                elif pos < len(data):
                    out = d.decompress(data[pos : pos + _CHUNK], _CHUNK)
                    pos += _CHUNK
                else:
                    out = d.flush()
            except zlib.error:
                raise _Cut("broken gzip data") from None
            if out:
                total += len(out)
                if total > max_bytes:
                    yield out[: len(out) - (total - max_bytes)]
                    raise _Cut(f"larger than {max_bytes} bytes uncompressed")
                yield out
            if d.eof:
                break
            if not out and not d.unconsumed_tail and pos >= len(data):
                raise _Cut("the gzip data ends early")
        data = d.unused_data + data[pos:] if pos < len(data) else d.unused_data


def _chain(head: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from chunks


def _what_is(root: str, head: bytes) -> str:
    low = head[:2048].lower()
    if root.lower() == "html" or low.startswith(b"<!doctype html"):
        return "this is an HTML page, not a sitemap"
    if root in ("rss", "feed", "RDF"):
        return "this is a feed (RSS/Atom), not a sitemap: watch it with type: feed"
    if not root:
        return "not a sitemap: no XML content found"
    return f"not a sitemap: the document is <{root}>, not <urlset> or <sitemapindex>"


# --------------------------------------------------------------------------- XML


_OTHER, _LOC, _LASTMOD, _NEWS, _TITLE, _PUB_DATE, _LANGUAGE, _KEYWORDS, _NAME = range(9)
_NEWS_FIELDS = {
    "title": _TITLE,
    "publication_date": _PUB_DATE,
    "language": _LANGUAGE,
    "keywords": _KEYWORDS,
    "name": _NAME,
}


def _tag_code(tag: object) -> int:
    """What an element is, by its tag: sitemap fields by local name, news fields by namespace.

    image: and video: blocks have <loc> and <title> children of their own: never ours."""
    if not isinstance(tag, str):
        return _OTHER  # an entity reference node
    ns, _, local = tag[1:].rpartition("}") if tag[:1] == "{" else ("", "", tag)
    if "image" in ns or "video" in ns:
        return _OTHER
    if "news" in ns:
        return _NEWS if local == "news" else _NEWS_FIELDS.get(local, _OTHER)
    return {"loc": _LOC, "lastmod": _LASTMOD}.get(local, _OTHER)


class _Reader:
    """Collects entries or children from a stream of finished elements."""

    def __init__(self, kind: str, now: datetime) -> None:
        self.result = ParsedSitemap(kind=kind)
        self.now = now
        self.seen: set[str] = set()
        self.order = 0
        self.dated: list[tuple[datetime, int, SitemapChild]] = []
        self.undated: list[SitemapChild] = []
        self.codes: dict[object, int] = {}  # element tag -> what it is (_tag_code), per file

    def accept(self, loc: str | None) -> str | None:
        """The URL of a <loc>, or None (counted as dropped) when unusable or repeated."""
        url = "".join((loc or "").split())
        if not _HTTP_URL_RE.match(url) or url in self.seen:
            self.result.dropped += 1
            return None
        self.seen.add(url)
        return url

    def url(self, elem: etree._Element) -> None:
        loc = lastmod = None
        news: etree._Element | None = None
        codes = self.codes
        for child in elem:
            code = codes.get(child.tag)
            if code is None:
                code = codes[child.tag] = _tag_code(child.tag)
            if code == _LOC:
                loc = _text(child)
            elif code == _LASTMOD:
                lastmod = _text(child)
            elif code == _NEWS:
                news = child
        url = self.accept(loc)
        if url is None:
            return
        entry = Entry(guid=url, url=url, title="")
        if news is not None:
            self.result.news = True
            pub_date = self._news(news, entry)
            entry.published = parse_w3c_date(pub_date, self.now)
        if entry.published is None:
            entry.published = parse_w3c_date(lastmod, self.now)
        self.result.entries.append(entry)

    def _news(self, news: etree._Element, entry: Entry) -> str | None:
        """Fill title, language and keywords from <news:news>; return the publication date."""
        pub_date = None
        codes = self.codes
        for child in news.iter():
            code = codes.get(child.tag)
            if code is None:
                code = codes[child.tag] = _tag_code(child.tag)
            if code == _TITLE:
                entry.title = _clean(_text(child))
            elif code == _PUB_DATE:
                pub_date = _text(child)
            elif code == _LANGUAGE:
                entry.language = _clean(_text(child)) or None
            elif code == _KEYWORDS:
                words = (_clean(k) for k in (_text(child) or "").split(","))
                entry.keywords = tuple(k for k in words if k)
            elif code == _NAME and self.result.title is None:
                self.result.title = _clean(_text(child)) or None
        return pub_date

    def sitemap(self, elem: etree._Element) -> None:
        loc = lastmod = None
        for child in elem:
            tag = child.tag
            if isinstance(tag, str):
                local = tag.rpartition("}")[2]
                if local == "loc":
                    loc = _text(child)
                elif local == "lastmod":
                    lastmod = _text(child)
        url = self.accept(loc)
        if url is None:
            return
        when = parse_w3c_date(lastmod, self.now)
        item = SitemapChild(url=url, lastmod=when)
        if when is None:
            self.undated.append(item)
        else:
            self.dated.append((when, self.order, item))
            self.order += 1

    def finish(self) -> ParsedSitemap:
        self.dated.sort(key=lambda t: (-t[0].timestamp(), t[1]))
        self.result.children = [t[2] for t in self.dated] + self.undated
        return self.result


def _parse_xml(
    chunks: Iterator[bytes], source: _Source, kind: str, now: datetime, *, strict_refs: bool
) -> ParsedSitemap | None:
    """Read a sitemap; None when the XML turned out invalid and ``strict_refs`` was off."""
    reader = _Reader(kind, now)
    parser = etree.XMLPullParser(
        events=("end",),
        tag=_URL_TAGS,
        recover=True,
        resolve_entities=False,
        no_network=True,
        huge_tree=True,
        remove_comments=True,
        remove_pis=True,
    )
    complete = False  # the root's end tag was read
    cut: str | None = None  # why the XML stops early, when it does

    def drain(trust: bool) -> None:
        nonlocal complete
        for _event, elem in parser.read_events():
            local = elem.tag.rpartition("}")[2]
            if local in ("urlset", "sitemapindex"):
                complete = complete or trust
                continue
            if trust and not complete:
                if local == "url" and kind == "urlset":
                    reader.url(elem)
                elif local == "sitemap" and kind == "index":
                    reader.sitemap(elem)
            elem.clear(keep_tail=False)
            while elem.getprevious() is not None:
                del elem.getparent()[0]

    try:
        for chunk in _repair(chunks, strict_refs):
            parser.feed(chunk)
            if not strict_refs and _has_errors(parser):
                return None
            drain(True)
    except etree.XMLSyntaxError:  # recovery gave up: keep what was read
        cut = "the XML cannot be read past this point"
    cut = cut or source.cut
    errors = [e for e in parser.feed_error_log if e.level >= _ERROR]
    try:
        parser.close()
    except etree.XMLSyntaxError:
        pass
    # Elements finished only by close() were closed by recovery at the end of the data: in a
    # document cut short the last of them is half a <url>, so they count only when the root's
    # own end tag was read during the feed (then close() finishes nothing anyway).
    whole = complete and cut is None
    drain(whole)
    result = reader.finish()
    problems = []
    if not whole:
        result.truncated = True
        problems.append(f"the sitemap is cut short ({cut or 'it ends early'})")
    if errors:
        problems.append(f"invalid XML at line {errors[0].line}: {errors[0].message.strip()}")
    result.warning = "; ".join(problems) or None
    return result


_ERROR = etree.ErrorLevels.ERROR


def _text(elem: etree._Element) -> str | None:
    """An element's text; None when libxml2's recovery left bytes that are not UTF-8."""
    try:
        return elem.text
    except UnicodeDecodeError:
        return None


def _has_errors(parser: etree.XMLPullParser) -> bool:
    log = parser.feed_error_log
    return bool(log) and any(e.level >= _ERROR for e in log)


# A "&" that starts no reference XML knows: a bare ampersand, or an HTML entity XML does not
# define (&nbsp;). Made well-formed before parsing, because libxml2's recovery drops the text
# after it (a URL's query string, the rest of a title). Worse, once a file has had any error,
# recovery drops even &amp; and &lt; (never &#38;): so when the parser reports an error the
# file is read again with _AMP_RE, which makes every reference numeric (slower, rarely needed).
_BAD_AMP_RE = re.compile(
    rb"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)([A-Za-z][A-Za-z0-9]{0,31};)?"
)
_AMP_RE = re.compile(rb"&(?!#[0-9]{1,7};|#x[0-9A-Fa-f]{1,6};)([A-Za-z][A-Za-z0-9]{0,31};)?")
_XML_ENTITIES = {b"amp;": b"&#38;", b"lt;": b"&#60;", b"gt;": b"&#62;", b"quot;": b"&#34;"}
_XML_ENTITIES[b"apos;"] = b"&#39;"
_CTRL = bytes(c for c in range(32) if c not in (9, 10, 13))  # never allowed in XML 1.0
_CARRY = 40  # bytes kept back at a chunk's end when a "&" there may start a split reference


def _fix_amp(m: re.Match[bytes]) -> bytes:
    name = m.group(1)
    if name:
        known = _XML_ENTITIES.get(name)
        if known is not None:
            return known
        char = html.entities.html5.get(name.decode("ascii"))
        if char is not None:
            return "".join(f"&#{ord(c)};" for c in char).encode("ascii")
        return b"&amp;" + name
    return b"&amp;"


_NUMERIC_REF_RE = re.compile(rb"&#(?:([0-9]{1,7})|x([0-9A-Fa-f]{1,6}));")


def _fix_numeric(m: re.Match[bytes]) -> bytes:
    """A character reference XML forbids (&#0;, &#xD800;, &#1;) becomes U+FFFD."""
    code = int(m.group(1)) if m.group(1) else int(m.group(2), 16)
    if code in (9, 10, 13) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD:
        return m.group(0)
    if 0x10000 <= code <= 0x10FFFF:
        return m.group(0)
    return b"&#65533;"


def _repair(chunks: Iterator[bytes], strict_refs: bool) -> Iterator[bytes]:
    """Bare ampersands, HTML entities and control characters made well-formed, chunk by chunk."""
    amp = _AMP_RE if strict_refs else _BAD_AMP_RE
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        last = data.rfind(b"&", len(data) - _CARRY)
        if last >= 0 and b";" not in data[last:]:
            data, carry = data[:last], data[last:]
        else:
            carry = b""
        yield _clean_chunk(data, amp)
    if carry:
        yield _clean_chunk(carry, amp)


def _clean_chunk(data: bytes, amp: re.Pattern[bytes]) -> bytes:
    data = amp.sub(_fix_amp, data.translate(None, _CTRL))
    if b"&#" in data:
        data = _NUMERIC_REF_RE.sub(_fix_numeric, data)
    return data


# --------------------------------------------------------------------------- plain text


def _parse_text(chunks: Iterator[bytes], source: _Source, now: datetime) -> ParsedSitemap:
    """A text sitemap: one absolute URL a line (the protocol allows it; no dates, no titles)."""
    reader = _Reader("urlset", now)
    tail = b""
    bad = 0
    for chunk in chunks:
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            bad += _text_line(reader, line)
    cut = source.cut
    if tail and not cut:  # after a cut the last line may be half a URL
        bad += _text_line(reader, tail)
    if not reader.result.entries:
        raise NotASitemap("not a sitemap: no XML and no list of URLs")
    result = reader.finish()
    if bad > max(10, len(result.entries)):
        raise NotASitemap("not a sitemap: mostly text that is not URLs")
    if cut:
        result.truncated = True
        result.warning = f"the sitemap is cut short ({cut})"
    return result


def _text_line(reader: _Reader, line: bytes) -> int:
    text = line.strip().decode("utf-8", "replace")
    if not text:
        return 0
    before = reader.result.dropped
    url = reader.accept(text)
    if url is None:
        return 1 if reader.result.dropped > before and "://" not in text else 0
    reader.result.entries.append(Entry(guid=url, url=url, title=""))
    return 0


def _clean(text: str | None) -> str:
    if not text:
        return ""
    if "&" in text:  # titles escaped twice (&amp;amp;) are common in CMS output
        text = html.unescape(text)
    return " ".join(text.split())
