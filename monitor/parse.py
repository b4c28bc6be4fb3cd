"""Feed bytes -> :class:`ParsedFeed`. Pure and synchronous: the daemon runs it in a process pool.

RSS 0.9x/1.0/2.0 and Atom go through feedparser (given bytes and the response's content type,
never a URL, so it never touches the network); JSON Feed is read with :mod:`json`. The result is
normalised the same way for every format: plain-text titles and summaries, absolute http(s) entry
URLs, timezone-aware UTC dates (None when absent, unparseable or implausibly far in the future),
raw GUIDs (None when the feed gives none: the pipeline derives identity).

What "handled" means for damaged feeds (docs/fetching.md says the same for users):

- Character sets (:func:`_as_utf8`): real feeds often declare the wrong one. A byte-order mark
  decides; UTF-16/32 without one is recognised by its NUL bytes; a body that is valid UTF-8 is
  UTF-8 whatever the label; then the XML prolog's label, then the HTTP header's; last, UTF-8 with
  each stray byte read as windows-1252 (a UTF-8 feed with pasted windows-1252 quotes reads right,
  and so does a feed that is windows-1252 throughout). Both parsers then get the same UTF-8 bytes.
- windows-1252 punctuation stored as C1 controls ("don\x92t", "&#146;") reads as that
  punctuation ("don’t"), as feedparser has always done.
- Double-encoded text ("CafÃ©", "donâ€™t") is repaired in titles, summaries and authors where
  that is safe (:func:`repair_mojibake`); GUIDs and URLs are kept as the feed wrote them, apart
  from feedparser's own whole-field latin-1 round trip, which both paths apply.
- HTML comments follow HTML5: "<!-->", "--!>" and a comment left open are comments; in a title
  typed as plain text a terminated comment is dropped too.
- A JSON Feed item id that is a number is its GUID, as written ("1.0" stays "1.0").

The lxml fast path (bottom of this module) gives exactly what the feedparser path gives, or
declines; tests/test_parse_differential.py holds it to that on a generated corpus.
"""

from __future__ import annotations

import codecs
import json
import re
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import ftfy
from feedparser.datetimes import _parse_date as feedparser_parse_date
from feedparser.html import _cp1252 as feedparser_cp1252
from feedparser.mixin import _FeedParserMixin
from lxml import etree

from monitor.models import Entry, NotAFeed, ParsedFeed

# A date further ahead than this is a publisher's mistake (or an event date), not a publish time.
FUTURE_SLACK = timedelta(days=1)

_SY_PERIODS = {
    "hourly": 3600.0,
    "daily": 86400.0,
    "weekly": 604800.0,
    "monthly": 2592000.0,
    "yearly": 31536000.0,
}
_FEED_LINK_TYPES = {
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
    "application/rdf+xml",
    "application/x.atom+xml",
    "application/x-atom+xml",
    "text/xml",
    "application/xml",
}
_BOMS = (
    codecs.BOM_UTF8,
    codecs.BOM_UTF32_LE,
    codecs.BOM_UTF32_BE,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
)
_WIDE_BOMS = (  # UTF-32LE's mark starts with UTF-16LE's: longest first
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_WIDE_CODECS = (("utf-32-le", 4), ("utf-32-be", 4), ("utf-16-le", 2), ("utf-16-be", 2))
_PROLOG_ENCODING_RE = re.compile(
    rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']"""
)
_PROLOG_TEXT_RE = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_UTF8_MULTI_RE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_HIGH_BYTES = bytes(range(0x80, 0x100))
_UNDEFINED_1252 = frozenset({0x81, 0x8D, 0x8F, 0x90, 0x9D})
_CHARSET_RE = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_WS_RE = re.compile(r"\s+")
_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def parse_feed(
    body: bytes, url: str, content_type: str = "", *, now: datetime | None = None
) -> ParsedFeed:
    """Parse a feed body fetched from ``url``; raise NotAFeed for HTML pages and junk."""
    now = now or datetime.now(UTC)
    body, note = _as_utf8(body, _header_charset(content_type))
    head = _strip_bom(body[:4096]).lstrip()
    if not head:
        raise NotAFeed("empty response: no feed content")
    media = content_type.split(";", 1)[0].strip().lower()
    if head[:1] in (b"{", b"[") or media in ("application/feed+json", "application/json"):
        return _parse_json_feed(body, url, now)
    return _parse_utf8_xml(body, note, url, content_type, now)


# --------------------------------------------------------------------------- XML via feedparser


def _parse_xml_feed(
    body: bytes, url: str, content_type: str, now: datetime, *, fast: bool = True
) -> ParsedFeed:
    """An XML feed as served; ``fast=False`` skips the lxml fast path (tests compare both)."""
    body, note = _as_utf8(body, _header_charset(content_type))
    return _parse_utf8_xml(body, note, url, content_type, now, fast=fast)


def _parse_utf8_xml(
    body: bytes,
    note: str | None,
    url: str,
    content_type: str,
    now: datetime,
    *,
    fast: bool = True,
) -> ParsedFeed:
    if fast:
        quick = _fast_rss(body, url, now)
        if quick is not None:
            quick.warning = note
            return quick
    # No content-location: relative links are resolved below against the feed URL, and a
    # relative GUID stays exactly as the feed wrote it (stable identity even if the feed moves).
    d = feedparser.parse(
        body,
        response_headers={"content-type": "application/xml; charset=utf-8"},
        resolve_relative_uris=False,
        sanitize_html=False,
    )
    if not d.get("version") and not d.get("entries"):
        _raise_not_a_feed(body, url, content_type, d)
    warning = note
    if d.get("bozo"):
        exc = d.get("bozo_exception")
        if not isinstance(exc, feedparser.CharacterEncodingOverride) or not warning:
            problem = _bozo_text(exc)
            warning = f"{warning}; {problem}" if warning else problem
    feed = d.get("feed", {})
    entries = [_fp_entry(e, url, now) for e in d.get("entries", [])]
    return ParsedFeed(
        title=_text(feed.get("title"), _detail_type(feed, "title")) or None,
        link=_abs_http(feed.get("link"), url),
        entries=entries,
        ttl=_ttl(feed),
        warning=warning,
        format=d.get("version") or "unknown",
    )


def _fp_entry(e: Any, base: str, now: datetime) -> Entry:
    summary = e.get("summary")
    summary_type = _detail_type(e, "summary")
    if (not summary or not e.get("summary_detail")) and e.get("content"):
        # feedparser copies content into `summary` without saying its type
        summary = e["content"][0].get("value")
        summary_type = e["content"][0].get("type") or "text/html"
    # plain dict lookups: FeedParserDict's own aliasing of these keys is deprecated
    published = dict.get(e, "published_parsed") or dict.get(e, "updated_parsed")
    guid = e.get("id")
    return Entry(
        guid=guid.strip() if isinstance(guid, str) and guid.strip() else None,
        url=_abs_http(e.get("link"), base),
        title=_text(e.get("title"), _detail_type(e, "title")),
        summary=_text(summary, summary_type),
        published=_from_struct(published, now),
        author=_text(e.get("author"), "text/plain") or None,
    )


def _detail_type(obj: Any, key: str) -> str:
    detail = obj.get(f"{key}_detail")
    return (detail.get("type") or "text/plain") if detail else "text/plain"


def _ttl(feed: Any) -> float | None:
    ttl = feed.get("ttl")
    try:
        if ttl is not None and float(ttl) > 0:
            return float(ttl) * 60.0
    except (TypeError, ValueError):
        pass
    period = _SY_PERIODS.get(str(feed.get("sy_updateperiod", "")).strip().lower())
    if period is None:
        return None
    try:
        frequency = float(feed.get("sy_updatefrequency") or 1)
    except (TypeError, ValueError):
        frequency = 1.0
    return period / frequency if frequency > 0 else period


def _bozo_text(exc: BaseException | None) -> str:
    """A feedparser problem in plain words (``line 7, column 3: mismatched tag``)."""
    if exc is None:
        return "the feed is not well-formed"
    msg = getattr(exc, "getMessage", None)
    if callable(msg):  # SAXParseException
        try:
            return f"not well-formed XML: line {exc.getLineNumber()}: {msg()}"  # type: ignore[attr-defined]
        except Exception:  # pragma: no cover - defensive: any odd exception type
            pass
    text = str(exc).strip() or type(exc).__name__
    return _WS_RE.sub(" ", text)


def _raise_not_a_feed(body: bytes, url: str, content_type: str, d: Any) -> None:
    sample = _strip_bom(body[:8192]).lstrip().lower()
    is_html = (
        "html" in content_type.lower()
        or sample.startswith((b"<!doctype html", b"<html"))
        or b"<html" in sample[:2048]
        or b"<head" in sample[:2048]
    )
    if is_html:
        links = find_feed_links(body, url, "utf-8")  # the body is UTF-8 by now
        hint = f"; it links to {len(links)} feed(s): {', '.join(links[:3])}" if links else ""
        raise NotAFeed(f"this is an HTML page, not a feed{hint}", links)
    exc = d.get("bozo_exception")
    detail = f" ({_bozo_text(exc)})" if exc is not None else ""
    raise NotAFeed(f"not a feed: no RSS, Atom or JSON Feed content found{detail}")


# --------------------------------------------------------------------------- charsets
#
# Every body is turned into UTF-8 here, once, and both parsers (lxml and feedparser) get the same
# UTF-8 bytes with a UTF-8 (or no) encoding declaration: the charset is decided in one place, so
# the two paths cannot disagree about it, and feedparser's own guessing never comes into play.


def _strip_bom(data: bytes) -> bytes:
    for bom in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :] if bom == codecs.BOM_UTF8 else data
    return data


def _header_charset(content_type: str) -> str | None:
    """The charset label of a Content-Type header, as written (None when absent)."""
    m = _CHARSET_RE.search(content_type or "")
    return m.group(1).strip("\"'") if m else None


def _codec(name: str | None) -> str | None:
    """The canonical codec name for a declared charset, or None when Python does not know it."""
    if not name:
        return None
    try:
        codec = codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None
    # WHATWG: these labels mean windows-1252 (its 0x80-0x9F are what such feeds really hold)
    return "cp1252" if codec in ("latin-1", "ascii", "iso8859-1") else codec


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: an undecodable byte is read as windows-1252 (latin-1 where undefined)."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    byte = exc.object[exc.start : exc.start + 1]
    return (_CP1252_BYTE.get(byte[0]) or byte.decode("latin-1")), exc.start + 1


codecs.register_error("feedwatch-cp1252", _cp1252_fallback)
_CP1252_BYTE = {
    b: bytes([b]).decode("cp1252") for b in range(0x80, 0x100) if b not in _UNDEFINED_1252
}


def _wide_codec(body: bytes) -> tuple[str, bool] | None:
    """(codec, has a BOM) for a UTF-16/32 body, else None.

    Without a byte-order mark the NUL pattern of the first characters tells (XML 1.0 appendix F;
    they are markup or whitespace in any XML or JSON document).
    """
    for bom, codec in _WIDE_BOMS:
        if body.startswith(bom):
            return codec, True
    if b"\x00" not in body[:4]:
        return None  # the first character is ASCII: UTF-16/32 would put a NUL beside it
    for codec, unit in _WIDE_CODECS:
        head = body[: unit * 16]
        try:
            text = head[: len(head) - len(head) % unit].decode(codec)
        except UnicodeDecodeError:
            continue
        first = text.lstrip(" \t\r\n")[:4]
        if first[:1] in ("<", "{", "[") and first.isascii() and "\x00" not in text:
            return codec, False
    return None


def _mostly_utf8(body: bytes) -> tuple[bool, int]:
    """(valid multi-byte UTF-8 outweighs the invalid bytes two to one, number of invalid bytes).

    Text in a legacy charset has at most about 0.45 byte of accidental valid UTF-8 per invalid
    byte (measured on Cyrillic, Greek, Polish and Czech text in capitals and lower case).
    """
    valid = sum(map(len, _UTF8_MULTI_RE.findall(body)))
    high = len(body) - len(body.translate(None, _HIGH_BYTES))
    invalid = high - valid
    return valid >= 2 * invalid, invalid


def _label_note(label: str, source: str, actual: str) -> str:
    if source == "header":
        return f"the server labels the feed {label} but it is {actual}; read as {actual}"
    return f"the feed is labelled {label} but its text is {actual}; read as {actual}"


def _as_utf8(body: bytes, header: str | None) -> tuple[bytes, str | None]:
    """(the body as UTF-8 with a UTF-8 encoding declaration if any, a warning or None).

    Real feeds often declare the wrong charset. In order: a byte-order mark; UTF-16/32 without
    one; valid UTF-8 whatever the label; the XML prolog's label (written by the software that wrote
    the feed), then the HTTP header's (often a server default) when the body decodes with it; and
    last UTF-8 with each byte that is not UTF-8 read as windows-1252 (a UTF-8 feed with a few
    pasted windows-1252 quotes; a feed that is all windows-1252 reads the same). A body that is
    mostly UTF-8 with a few stray bytes is read that last way even when labelled with a legacy
    charset. Labels in warnings are shown as written.
    """
    wide = _wide_codec(body)
    if wide is not None:
        return _wide_as_utf8(body, header, *wide)
    m = _PROLOG_ENCODING_RE.match(body, 0, 512)
    prolog_label = m.group(1).decode("ascii") if m else None
    prolog = _codec(prolog_label)
    if prolog and prolog.startswith(("utf-16", "utf-32")):
        prolog = None  # an ASCII-readable prolog cannot be UTF-16/32: the label is wrong
    header_codec = _codec(header)
    note = None
    if body.isascii():
        out = body  # every ASCII-compatible label reads ASCII the same way
    elif _decodes(body, "utf-8"):
        out = body
        if prolog and prolog != "utf-8":
            note = _label_note(str(prolog_label), "prolog", "UTF-8")
        elif not prolog and header_codec and header_codec != "utf-8":
            note = f"the feed is labelled {header} but its text is UTF-8; read as UTF-8"
    else:
        out, note = _legacy_as_utf8(body, (prolog, prolog_label), (header_codec, header))
    if m and _codec(prolog_label) != "utf-8":
        out = out[: m.start(1)] + b"utf-8" + out[m.end(1) :]  # the text is UTF-8 now
    return out, note


def _legacy_as_utf8(
    body: bytes, prolog: tuple[str | None, str | None], header: tuple[str | None, str | None]
) -> tuple[bytes, str | None]:
    """A body that is not valid UTF-8, decoded by the rules of :func:`_as_utf8`."""
    mostly_utf8, invalid = _mostly_utf8(body)
    header_codec, header_label = header
    if not mostly_utf8:
        for codec, label in (prolog, header):
            if codec and codec != "utf-8" and (codec == "cp1252" or _decodes(body, codec)):
                note = None
                if header_codec and codec != header_codec:
                    note = _label_note(str(header_label), "header", str(label))
                return _decode_legacy(body, codec).encode("utf-8"), note
        declared = [c for c in (prolog[0], header_codec) if c and c != "utf-8"]
        if declared:  # labelled, with a few bytes that are not in the charset: keep the label
            codec, label = prolog if prolog[0] == declared[0] else header
            text = body.decode(str(codec), errors="replace")
            return text.encode("utf-8"), f"some bytes are not {label}: replaced with U+FFFD"
    text = body.decode("utf-8", errors="feedwatch-cp1252")
    note = f"the feed is UTF-8 but {invalid} byte(s) are not; read those as windows-1252"
    return text.encode("utf-8"), note


def _decode_legacy(body: bytes, codec: str) -> str:
    if codec == "cp1252":
        return body.decode("cp1252", errors="feedwatch-cp1252")
    return body.decode(codec)


def _wide_as_utf8(
    body: bytes, header: str | None, codec: str, bom: bool
) -> tuple[bytes, str | None]:
    text = body[4 if codec.startswith("utf-32") and bom else 2 if bom else 0 :].decode(
        codec, errors="replace"
    )
    m = _PROLOG_TEXT_RE.match(text, 0, 512)
    note = None
    name = codec.upper().replace("-LE", "LE").replace("-BE", "BE")
    family = {codec, codec[:6]}  # utf-16-le is also fine as plain utf-16
    if not bom:
        if m and _codec(m.group(1)) not in family:
            note = _label_note(m.group(1), "prolog", name)
        elif header and _codec(header) not in family:
            note = _label_note(header, "header", name)
    if m:
        text = text[: m.start(1)] + "utf-8" + text[m.end(1) :]
    return text.encode("utf-8", errors="replace"), note


def _decodes(body: bytes, codec: str) -> bool:
    try:
        body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


# --------------------------------------------------------------------------- JSON Feed


def _parse_json_feed(body: bytes, url: str, now: datetime) -> ParsedFeed:
    try:
        data = json.loads(
            _strip_bom(body).decode("utf-8", errors="replace"), parse_float=_JsonNumber
        )
    except (ValueError, RecursionError) as exc:
        raise NotAFeed(f"not a feed: invalid JSON ({_WS_RE.sub(' ', str(exc))})") from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not (
        (isinstance(version, str) and version.startswith("https://jsonfeed.org/version/"))
        or isinstance(data.get("items"), list)
    ):
        raise NotAFeed("not a feed: JSON without JSON Feed content")
    items = data.get("items")
    entries = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            entries.append(_json_entry(item, url, now))
    fmt = "json11" if isinstance(version, str) and version.endswith("1.1") else "json10"
    if not isinstance(version, str):
        fmt = "json"
    home = data.get("home_page_url")
    return ParsedFeed(
        title=_text(_str(data.get("title")), "text/plain") or None,
        link=_abs_http(home if isinstance(home, str) else None, url),
        entries=entries,
        format=fmt,
    )


def _json_entry(item: dict[str, Any], base: str, now: datetime) -> Entry:
    guid = item.get("id")
    # The spec says a string, but numbers are common: an integer or a number with a fraction or
    # exponent is taken as written ("1.0" stays "1.0"), the same string on every poll;
    # true/false/null/objects are no identity. (_JsonNumber is a str.)
    ok = isinstance(guid, str | int) and not isinstance(guid, bool)
    guid_text = str(guid).strip() if ok else ""
    link = item.get("url") if isinstance(item.get("url"), str) else item.get("external_url")
    if _str(item.get("summary")):
        summary = _text(_str(item.get("summary")), "text/plain")
    elif _str(item.get("content_text")):
        summary = _text(_str(item.get("content_text")), "text/plain")
    else:
        summary = _text(_str(item.get("content_html")), "text/html")
    authors = item.get("authors")
    author = authors[0] if isinstance(authors, list) and authors else item.get("author")
    name = author.get("name") if isinstance(author, dict) else None
    return Entry(
        guid=guid_text or None,
        url=_abs_http(link if isinstance(link, str) else None, base),
        title=_text(_str(item.get("title")), "text/plain"),
        summary=summary,
        published=_parse_date(
            _str(item.get("date_published")) or _str(item.get("date_modified")), now
        ),
        author=_text(_str(name), "text/plain") or None,
    )


class _JsonNumber(str):
    """A JSON number with a fraction or exponent, kept as written (``json.loads(parse_float=)``)."""

    __slots__ = ()


def _str(value: Any) -> str:
    """``value`` when it is a JSON string (not a number kept as text), else ''."""
    return value if type(value) is str else ""


# --------------------------------------------------------------------------- shared helpers


def _abs_http(link: Any, base: str) -> str | None:
    """``link`` made absolute against the feed URL; None unless it is a usable http(s) URL."""
    if not isinstance(link, str) or not link.strip():
        return None
    try:
        absolute = urljoin(base, link.strip())
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return absolute


def _from_struct(value: time.struct_time | None, now: datetime) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None
    return None if when - now > FUTURE_SLACK else when


def _parse_date(value: str, now: datetime) -> datetime | None:
    """RFC 3339 / RFC 822 and the many variants feedparser knows -> aware UTC datetime."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        return None if when - now > FUTURE_SLACK else when
    except ValueError:
        pass
    try:
        parsed = feedparser_parse_date(value)
    except Exception:  # feedparser's date handlers raise odd errors on odd input
        return None
    return _from_struct(parsed, now)


def _text(value: Any, content_type: str) -> str:
    """Plain text: mojibake repaired, HTML stripped when the value is HTML, comments dropped,
    whitespace collapsed."""
    if not isinstance(value, str) or not value:
        return ""
    # Before whitespace is collapsed: a mojibake NBSP ("å\xa0±" is "報") is part of the repair.
    value = repair_mojibake(value)
    if "html" in content_type.split(";", 1)[0].lower() and ("<" in value or "&" in value):
        had_refs = "&" in value
        value = html_to_text(value)
        if had_refs:
            value = repair_mojibake(value)  # mojibake written with references ("Ã&copy;")
    elif "<!--" in value:
        # Plain text by type, yet a terminated comment is template markup, never meant to be read.
        value = _TERMINATED_COMMENT_RE.sub("", value)
    return _WS_RE.sub(" ", _CTRL_RE.sub("", value)).strip()


# ftfy with only its encoding repairs: no HTML unescaping, quote uncurling, width or
# normalisation changes (the matcher normalises; a title is shown as the feed wrote it).
_REPAIR_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    fix_surrogates=False,
    remove_control_chars=False,
    normalization=None,
    explain=True,
)
# The repairs taken: UTF-8 that was read as latin-1, windows-1252 or windows-1251 (once or more),
# and the fix-ups ftfy makes on the way. A plan with any other step (macroman, cp437, the other
# windows code pages...) is refused whole: those are where ftfy's rare false positives are.
_REPAIR_STEPS = frozenset(
    {
        ("encode", "latin-1"),
        ("encode", "sloppy-windows-1252"),
        ("encode", "sloppy-windows-1251"),
        ("decode", "utf-8"),
        ("decode", "utf-8-variants"),
        ("decode", "windows-1252"),  # how ftfy spells fix_c1_controls' effect
        ("transcode", "restore_byte_a0"),
        ("transcode", "replace_lossy_sequences"),
        ("apply", "decode_inconsistent_utf8"),
        ("apply", "fix_c1_controls"),
        ("transcode", "fix_c1_controls"),
    }
)


# Evidence of mojibake, which ftfy is only asked about when there is some (it is slow, and the
# evidence rule is also what keeps ordinary text safe): a C1 control; a UTF-8 sequence misread as
# windows-1252/latin-1 or as windows-1251, that is a lead byte's character then continuation
# bytes' characters; or such a sequence whose 0xA0 byte became a space.
_LEAD_1252 = bytes(range(0xC2, 0xF5)).decode("latin-1")
_CONT_1252 = bytes(range(0x80, 0xC0)).decode("latin-1") + bytes(
    b for b in range(0x80, 0xA0) if b not in _UNDEFINED_1252
).decode("cp1252")
_LEAD_1251 = bytes(range(0xC2, 0xF5)).decode("cp1251")
_CONT_1251 = bytes(b for b in range(0x80, 0xC0) if b != 0x98).decode("cp1251")
# Punctuation that ordinary text puts right after a word: "IRMÃ”" (Portuguese, in capitals, then
# a closing quote) is also the mojibake of "IRMÔ"; "слово»" (Russian) looks like the start of
# one. A lead character then one of these is no evidence.
_AMBIGUOUS_TRAIL = frozenset("”’“‘–—…»·•™„‚\u00a0›")


def _unambiguous(continuation: str) -> str:
    return re.escape("".join(c for c in continuation if c not in _AMBIGUOUS_TRAIL))


def _after(lead: str, continuation: str) -> str:
    """After a lead character: a continuation that is not ambiguous, or two of any kind."""
    any_cont = re.escape(continuation)
    return f"(?<=[{re.escape(lead)}])(?:[{_unambiguous(continuation)}]|[{any_cont}]{{2}})"


# One character class first (re then scans for it fast, 4-5x faster here than an alternation of
# classes), then what must follow it, chosen by what it was.
_MOJIBAKE_EVIDENCE_RE = re.compile(
    f"[\u0080-\u009f{re.escape(_LEAD_1252 + _LEAD_1251)}](?:"
    + "|".join(
        (
            "(?<=[\u0080-\u009f])",  # a C1 control
            _after(_LEAD_1252, _CONT_1252),
            _after(_LEAD_1251, _CONT_1251),
            # sequences whose 0xA0 byte became a space: "Ã " for "à", "â€ " for "†"
            "(?<=[ÂÃÐ]) ",
            f"(?<=[à-ï])[{_unambiguous(_CONT_1252)}] ",
            # "Ã\xa0" is "à", "Â\xa0" a no-break space, when a lower-case letter follows
            # ("AfghÃ\xa0nistan"); before a capital or a space it may be a Portuguese word+&nbsp;
            "(?<=[ÂÃ])\u00a0(?=[a-zß-ÿ])",
        )
    )
    + ")"
)


def repair_mojibake(text: str) -> str:
    """Double-encoded text repaired ("CafÃ©" -> "Café", "donâ€™t" -> "don’t"), else ``text``.

    Safe means ordinary text is never changed. So: only ftfy's encoding repairs, only the plans in
    _REPAIR_STEPS, and only on evidence that ordinary text does not hold (a capital then a closing
    quote or dash is not enough: see _AMBIGUOUS_TRAIL). The cost: a title whose only damage is
    such a pair ("Ã”" for "Ô") stays as it is. Measured on 371,815 distinct non-ASCII strings
    (CLDR names in every locale, justext stop words in 100 languages, GeoNames names), 39,162
    generated sentences and every Latin-1 letter before every punctuation mark: nothing ordinary
    changes (tests/test_parse.py keeps a sample of that).
    """
    if text.isascii() or not _MOJIBAKE_EVIDENCE_RE.search(text):
        return text
    fixed, plan = ftfy.fix_encoding_and_explain(text, _REPAIR_CONFIG)
    if fixed != text and plan and all((s.action, s.parameter) in _REPAIR_STEPS for s in plan):
        return fixed
    return text


# HTML5 comment rules: "<!-->" and "<!--->" are empty comments, "--!>" ends one as "-->" does,
# and a comment left open runs to the end of the fragment.
_COMMENT_RE = re.compile(r"<!--(?:-?>|.*?--!?>|.*\Z)", re.S)
_TERMINATED_COMMENT_RE = re.compile(r"<!--(?:-?>|.*?--!?>)", re.S)


_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6"
    " header hr li main nav ol p pre section table td th tr ul".split()
)
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript", "iframe", "object", "svg"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _BLOCK_TAGS or tag == "img":
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment: tags removed, entities decoded, whitespace collapsed."""
    if "<!--" in html:
        html = _COMMENT_RE.sub("", html)  # html.parser before 3.13 knows only "-->"
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # pathological markup: keep what was read
        pass
    return _WS_RE.sub(" ", "".join(parser.parts)).strip()


class _FeedLinkFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        elif tag == "link":
            rels = a.get("rel", "").lower().split()
            kind = a.get("type", "").split(";", 1)[0].strip().lower()
            if "alternate" in rels and kind in _FEED_LINK_TYPES and a.get("href", "").strip():
                self.links.append(a["href"].strip())

    handle_startendtag = handle_starttag


def find_feed_links(body: bytes, url: str, charset: str | None = None) -> list[str]:
    """Absolute URLs of the feeds an HTML page advertises with <link rel=alternate>."""
    text = _strip_bom(body[: 512 * 1024]).decode(charset or "utf-8", errors="replace")
    finder = _FeedLinkFinder()
    try:
        finder.feed(text)
        finder.close()
    except (AssertionError, ValueError):
        pass
    base = _abs_http(finder.base, url) or url
    out: list[str] = []
    for href in finder.links:
        absolute = _abs_http(href, base)
        if absolute and absolute not in out:
            out.append(absolute)
    return out


# --------------------------------------------------------------------------- RSS 2.0 fast path
#
# feedparser spends most of a poll's CPU time. Plain, well-formed RSS 2.0 (most feeds) is read
# here with lxml instead, producing exactly the Entry values the feedparser path produces
# (tests/test_parse_differential.py compares both on a generated corpus of encodings and shapes).
# Each element's text gets feedparser's own touches (_fp_touches, _fp_link), and the shared _text
# does the rest. Anything unusual returns None and goes to feedparser: a DOCTYPE, xml:base, an
# element with markup inside a text field, repeated fields, an empty <link> or <guid>, an
# <author>, a skipped element with children, or any item child whose namespace feedparser maps
# onto title/summary/date/author (itunes, dc:date, media:title, atom, ...).

_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_SY = "{http://purl.org/rss/1.0/modules/syndication/}"
_ITEM_FIELDS = frozenset(
    {"title", "link", "description", "guid", "pubDate", f"{_DC}creator", f"{_CONTENT}encoded"}
)
_ITEM_IGNORED = frozenset(
    {
        "category",
        "comments",
        "enclosure",
        "{http://wellformedweb.org/CommentAPI/}commentRss",
        "{http://purl.org/rss/1.0/modules/slash/}comments",
        # feedparser keeps these apart (media_content, media_thumbnail) unless they hold
        # children such as media:title, which it maps onto the title: see _fields
        "{http://search.yahoo.com/mrss/}content",
        "{http://search.yahoo.com/mrss/}thumbnail",
    }
)
_CHANNEL_FIELDS = frozenset({"title", "link", "ttl", f"{_SY}updatePeriod", f"{_SY}updateFrequency"})
_ATOM_LINK = "{http://www.w3.org/2005/Atom}link"
_HARMLESS_RELS = frozenset({"self", "hub", "next", "previous", "first", "last"})
_looks_like_html = _FeedParserMixin.looks_like_html
_FP_CP1252 = str.maketrans(feedparser_cp1252)
_C1_RE = re.compile("[\u0080-\u009f]")
_LATIN1_UTF8_RE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf]")
# Both of feedparser's touches need a character in U+0080-U+00BF: in a UTF-8 body, the bytes
# C2 80-C2 BF or a character reference to one (&#146;, &#x92;, &#0160;). Two regexes that each
# start with a literal: re scans for those fast (one alternation is 20x slower on a 12 KB feed).
_TOUCHABLE_BYTES_RE = re.compile(rb"\xc2[\x80-\xbf]")
_TOUCHABLE_REF_RE = re.compile(rb"&#0*(?:12[89]|1[3-8][0-9]|19[01]|[xX]0*[89abAB][0-9a-fA-F]);")


def _touchable(body: bytes) -> bool:
    """Whether any text in this UTF-8 body can need _fp_touches."""
    return bool(_TOUCHABLE_BYTES_RE.search(body) or _TOUCHABLE_REF_RE.search(body))


_FP_ENTITY_LIKE_RE = re.compile("&([A-Za-z0-9_]+);")


class _Decline(Exception):
    """The fast path does not handle this feed; feedparser will."""


def _fast_rss(body: bytes, url: str, now: datetime) -> ParsedFeed | None:
    head = body[:2048]
    if not head.lstrip(codecs.BOM_UTF8 + b" \t\r\n").startswith((b"<?xml", b"<rss")):
        return None
    if b"<!DOCTYPE" in head or b"<!doctype" in head or b"xml:base" in body:
        return None
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        recover=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root.tag != "rss" or root.get("version") != "2.0":
        return None
    channels = [c for c in root if c.tag == "channel"]
    if len(channels) != 1 or len(root) != 1:
        return None
    channel = channels[0]
    touch = _touchable(body)  # once per feed: a regex per field costs more than the rest
    try:
        fields = _fields(channel, _CHANNEL_FIELDS, None, touch)
        entries = [_fast_entry(item, url, now, touch) for item in channel if item.tag == "item"]
    except _Decline:
        return None
    title = fields.get("title")
    ttl_source = {
        "ttl": fields.get("ttl"),
        "sy_updateperiod": fields.get(f"{_SY}updatePeriod"),
        "sy_updatefrequency": fields.get(f"{_SY}updateFrequency"),
    }
    return ParsedFeed(
        title=_text(title, _guess_type(title)) or None,
        link=_abs_http(_fp_link(fields.get("link"), entry=False), url),
        entries=entries,
        ttl=_ttl({k: v for k, v in ttl_source.items() if v is not None}),
        warning=None,
        format="rss20",
    )


def _fields(
    parent: etree._Element,
    wanted: frozenset[str],
    allowed_extra: frozenset[str] | None,
    touch: bool = True,
) -> dict[str, str]:
    """Text of the wanted children; declines on repeats, nested markup or unknown children."""
    out: dict[str, str] = {}
    for child in parent:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if tag in wanted:
            if tag in out or len(child) or (child.attrib and tag != "guid"):
                raise _Decline  # attributes such as mode="base64" or type= change the value
            text = (child.text or "").strip()
            out[tag] = _fp_touches(text) if touch else text
        elif allowed_extra is not None and (tag not in allowed_extra or len(child)):
            raise _Decline
        elif allowed_extra is None and tag == "item":
            continue
        elif allowed_extra is None and tag.startswith("{") and not tag.startswith(_SY):
            if tag == _ATOM_LINK and child.get("rel") in _HARMLESS_RELS:
                continue  # rel=self/hub links never become the feed's link
            # other namespaced channel children (itunes:*, atom:*) may change title or link
            raise _Decline
    return out


def _fp_touches(value: str) -> str:
    """What feedparser does to every element's text (``_FeedParserMixin.pop``, the body being
    UTF-8): text that is UTF-8 read as latin-1 is re-read, C1 controls become windows-1252."""
    if value.isascii():
        return value
    if _LATIN1_UTF8_RE.search(value):  # else the round trip cannot succeed
        try:
            value = value.encode("iso-8859-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return value.translate(_FP_CP1252) if _C1_RE.search(value) else value


def _fp_link(value: str | None, *, entry: bool) -> str | None:
    """feedparser's repair of ``?a=1&b;=2``-style query strings in <link> (entry and feed)."""
    if value is None or "&" not in value:
        return value
    if entry:
        value = value.replace("&amp;", "&")
    return _FP_ENTITY_LIKE_RE.sub(r"&\g<1>", value)


def _guess_type(value: str | None) -> str:
    return "text/html" if value and _looks_like_html(value) else "text/plain"


def _fast_entry(item: etree._Element, base: str, now: datetime, touch: bool = True) -> Entry:
    f = _fields(item, _ITEM_FIELDS, _ITEM_IGNORED, touch)
    if f.get("link") == "" or f.get("guid") == "":
        raise _Decline  # feedparser's handling of empty elements is not worth copying
    guid = f.get("guid")
    link = _fp_link(f.get("link"), entry=True)
    guid_el = item.find("guid")
    if guid_el is not None:
        if set(guid_el.attrib.keys()) - {"isPermaLink"}:
            raise _Decline
        permalink = guid_el.get("isPermaLink", "true")
        if permalink not in ("true", "false"):
            raise _Decline
        if link is None and permalink == "true":
            link = guid  # RSS 2.0: a permalink GUID is the item's link
    summary = f.get("description") or f.get(f"{_CONTENT}encoded")  # an empty one too
    date = f.get("pubDate")
    title = f.get("title")
    return Entry(
        guid=guid or None,
        url=_abs_http(link, base),
        title=_text(title, _guess_type(title)),
        summary=_text(summary, "text/html"),
        published=_from_struct(_fp_date(date), now) if date else None,
        author=_text(f.get(f"{_DC}creator"), "text/plain") or None,
    )


def _fp_date(value: str) -> time.struct_time | None:
    try:
        return feedparser_parse_date(value)
    except Exception:  # feedparser's date handlers raise odd errors on odd input
        return None
