"""A seeded corpus of generated feeds across encodings, charset labels and shapes.

Used to hold the lxml fast path to the feedparser path (tests/test_parse_differential.py) and to
check that what a reader should see is what comes out. Every case is built from a plain text the
feed is meant to show; ``titles`` lists it per item where the bytes and labels make it decidable
(None where a wrong legacy label makes the result legitimately garbled, or the shape has no
title).
"""

from __future__ import annotations

import base64
import codecs
import random
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252, to make mojibake with)

# Texts a feed means to show, by script. Each encoding lists the pools it holds natively; other
# text reaches it as character references.
POOLS: dict[str, list[str]] = {
    "en": [
        "Wildfire forces evacuation near Lisbon",
        "Council approves budget & levees",
        "3 < 4 and 5 > 2: a plain-text title",
        "Storm hits the coast; ferries cancelled",
        "AT&T outage hits 911 calls",
    ],
    "west": [
        "Café in São Paulo reopens",
        "Über die Brücke in Zürich",
        "Año nuevo en España: ñandú",
        "Crème brûlée à la française",
    ],
    "punct": [
        "Don’t panic — “quoted” words…",
        "Prices up 5 € – “again”",
        "It’s the ‘final’ offer™",
    ],
    "ru": ["Пожар в Москве: объявлена эвакуация", "Наводнение в Санкт-Петербурге"],
    "ja": ["東京で地震、避難指示", "大阪で大雨警報"],
    "zh": ["北京发生地震", "上海暴雨"],
    "el": ["Σεισμός στην Αθήνα", "Πυρκαγιά στην Κρήτη"],
}
ENCODINGS: dict[str, tuple[str, ...]] = {
    "utf-8": ("en", "west", "punct", "ru", "ja", "zh", "el"),
    "utf-8+cp1252": ("en", "west", "punct"),  # UTF-8 with some punctuation as raw cp1252 bytes
    "utf-16-le": ("en", "west", "punct", "ru", "ja"),
    "utf-16-be": ("en", "west", "punct", "ru", "ja"),
    "utf-32-le": ("en", "west", "punct", "ru"),
    "utf-32-be": ("en", "west", "punct", "zh"),
    "iso-8859-1": ("en", "west"),
    "windows-1252": ("en", "west", "punct"),
    "koi8-r": ("en", "ru"),
    "windows-1251": ("en", "ru"),
    "shift_jis": ("en", "ja"),
    "gbk": ("en", "zh"),
    "iso-8859-7": ("en", "el"),
}
WIDE = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
BOMS = {
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}
# rss20-plain: only what the fast path reads (every value variant, no odd elements): it must be
# taken, so that its values are compared and not only its declines.
SHAPES = ("rss20", "rss20", "rss20-plain", "rss20-plain", "rss20-ns", "rss20-ns", "rss09", "rdf")
SHAPES += ("atom10", "atom03")
DATES = [
    "Wed, 03 Jan 2024 10:00:00 +0000",
    "Wed, 03 Jan 2024 10:00:00 GMT",
    "Wed, 3 Jan 2024 10:00 EST",
    "03 Jan 2024 10:00:00 +0100",
    "Wed, 03 Jan 24 10:00:00 +0000",
    "Wed, 03 Jan 2024 10:00:00 PDT",
    "Wed, 03 Jan 2024 10:00:00 +0000 (UTC)",
    "2024-01-03T10:00:00Z",
    "2024-01-03T10:00:00+05:30",
    "2024-01-03T10:00:00.123456Z",
    "2024-01-03 10:00:00",
    "2024-01-03",
    "Wednesday, January 3, 2024 10:00 AM",
    "Fri, 01 Jan 2100 00:00:00 GMT",
    "Wed, 03 Jan 2024 25:61:00 +0000",
    "sometime last week",
    "  Tue, 02 Jan 2024 09:05:00 +0530  ",
    "",
]
DESCRIPTION_ATTRS = [' type="text/plain"', ' mode="base64"', ' xml:lang="fr"', ' type="html"']
DC = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'
NAMESPACES = (
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:atom="http://www.w3.org/2005/Atom"'
    ' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'
    ' xmlns:media="http://search.yahoo.com/mrss/"'
    ' xmlns:wfw="http://wellformedweb.org/CommentAPI/"'
    ' xmlns:slash="http://purl.org/rss/1.0/modules/slash/"'
    ' xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'
)
FEED_URL = "https://corpus.example.org/news/feed.xml"


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    content_type: str
    shape: str
    encoding: str
    titles: tuple[str | None, ...] | None  # per item, what a reader should see; None: undecided


def mojibake(text: str) -> str:
    """UTF-8 bytes read as windows-1252: "Café" -> "CafÃ©"."""
    return text.encode("utf-8").decode("sloppy-windows-1252")


class _Gen:
    def __init__(self, rng: random.Random, encoding: str, shape: str) -> None:
        self.rng = rng
        self.encoding = encoding
        self.shape = shape
        self.native = ENCODINGS[encoding]
        self.decidable = True

    def text(self) -> str:
        pool = self.rng.choice(self.native) if self.rng.random() < 0.85 else "punct"
        return self.rng.choice(POOLS[pool])

    def native_text(self) -> str:
        return self.rng.choice(POOLS[self.rng.choice(self.native)])

    def encodable(self, text: str) -> bool:
        enc = "utf-8" if self.encoding == "utf-8+cp1252" else self.encoding
        try:
            text.encode(enc)
        except UnicodeEncodeError:
            return False
        return True

    def title(self) -> tuple[str, str | None]:
        """(XML content of a title element, the text a reader should see or None)."""
        t = self.text()
        kind = self.rng.choice(
            [
                "plain",
                "plain",
                "plain",
                "html",
                "cdata",
                "ref",
                "c1",
                "comment",
                "badcomment",
                "mojibake",
                "padded",
                "empty",
            ]
        )
        if kind == "plain":
            return escape(t), t
        if kind == "html":
            return escape(f"<b>{escape(t)}</b> <i>now</i>"), f"{t} now"
        if kind == "cdata":
            t = self.native_text()
            return f"<![CDATA[<em>{escape(t)}</em>]]>", t
        if kind == "ref":
            return "".join(c if ord(c) < 128 else f"&#{ord(c)};" for c in escape(t)), t
        if kind == "c1":
            return self.rng.choice(
                ["don&#146;t stop &#147;now&#148;", "don&#x92;t stop &#X93;now&#0148;"]
            ), "don’t stop “now”"
        if kind == "comment":
            return escape(f"<b>{escape(t)}</b><!-- cms:slot -->"), t
        if kind == "badcomment":
            return escape(f"<b>{escape(t)}</b> <!-- cms --!> more <!-->"), f"{t} more"
        if kind == "mojibake":
            return escape(mojibake(t)), t
        if kind == "padded":
            return f"\n\t  {escape(t)}  \n", t
        return "", ""

    def summary(self) -> str:
        t = self.text()
        return self.rng.choice(
            [
                escape(f"<p>{escape(t)}</p><p>Second <a href='/x'>link</a>.</p>"),
                f"<![CDATA[<div>{escape(self.native_text())}<script>track()</script></div>]]>",
                escape(t),
                escape(f"{t} <!-- ad --!> tail"),
                escape(mojibake(t)),
                "Plain &amp; simple: 5 &lt; 6",
                "&lt;img src=&quot;/a.png&quot;&gt; caption",
                "",
            ]
        )

    def link(self, i: int) -> str | None:
        return self.rng.choice(
            [
                f"https://corpus.example.org/a/{i}",
                f"https://corpus.example.org/a/{i}",
                f"/rel/{i}",
                f"rel/{i}?a=1&amp;b=2",
                f"  https://corpus.example.org/pad/{i}  ",
                f"https://corpus.example.org/q?id={i}&amp;amp;x=1",
                "javascript:alert(1)",
                f"https://corpus.example.org/caf%C3%A9/{i}",
                "",
                None,
            ]
        )

    def date(self) -> str:
        return escape(self.rng.choice(DATES))

    def maybe(self, p: float) -> bool:
        return self.rng.random() < p


def _rss_item(g: _Gen, i: int, ns: bool, version: str, plain: bool) -> tuple[str, str | None]:
    parts: list[str] = []
    expected: str | None = None
    if g.maybe(0.9):
        content, expected = g.title()
        parts.append(f"<title>{content}</title>")
    link = g.link(i)
    while plain and link == "":
        link = g.link(i)
    if link is not None:
        parts.append(f"<link>{escape(link) if '&amp;' not in link else link}</link>")
    if version == "2.0":
        guid = g.rng.choice(
            [
                None,
                f"<guid>https://corpus.example.org/a/{i}</guid>",
                f'<guid isPermaLink="false">urn:corpus:{i}</guid>',
                f'<guid isPermaLink="true">/perma/{i}</guid>',
                f"<guid>item-{i}</guid>",
                "<guid></guid>",
                f"<guid>  spaced-{i}  </guid>",
                f"<guid>caf&#233;-{i}</guid>",
                f"<guid>caf\u00c3\u00a9-{i}</guid>",  # a double-encoded GUID
                f'<guid isPermaLink="false">c1&#150;{i}</guid>',  # a C1 control: an en dash
            ]
            + ([] if plain else ['<guid isPermaLink="no">x</guid>', '<guid xml:lang="en">y</guid>'])
        )
        if plain and guid == "<guid></guid>":
            guid = None
        if guid:
            parts.append(guid)
        if g.maybe(0.8):
            parts.append(f"<pubDate>{g.date()}</pubDate>")
    if g.maybe(0.85):
        attrs = "" if plain or g.maybe(0.85) else g.rng.choice(DESCRIPTION_ATTRS)
        if "base64" in attrs:
            parts.append(
                f"<description{attrs}>{base64.b64encode(b'<b>x</b> y').decode()}</description>"
            )
        else:
            parts.append(f"<description{attrs}>{g.summary()}</description>")
    if ns and g.maybe(0.5):
        parts.append(f"<content:encoded>{g.summary()}</content:encoded>")
    if ns and g.maybe(0.5):
        parts.append(f"<dc:creator>{escape(g.text())}</dc:creator>")
    if version == "2.0" and not plain and g.maybe(0.15):
        parts.append("<author>desk@corpus.example.org (News Desk)</author>")
    if g.maybe(0.3):
        parts.append("<category>news</category><category><![CDATA[World]]></category>")
    if g.maybe(0.2):
        parts.append(
            f'<enclosure url="https://corpus.example.org/{i}.mp3" length="1" type="audio/mpeg"/>'
        )
    if g.maybe(0.2):
        parts.append(f"<comments>https://corpus.example.org/a/{i}#c</comments>")
    if plain:
        parts.append(
            g.rng.choice(
                [
                    "",
                    f"<dc:creator>{escape(g.text())}</dc:creator>",
                    f"<content:encoded>{g.summary()}</content:encoded>",
                    f'<media:content url="https://corpus.example.org/{i}.jpg"/>',
                    f'<media:thumbnail url="https://corpus.example.org/{i}.png"/>',
                    "<slash:comments>3</slash:comments>",
                ]
            )
        )
    elif ns:
        extra = g.rng.choice(
            [
                "",
                "",
                f"<dc:date>2024-01-0{1 + i % 4}T08:00:00Z</dc:date>",
                f'<media:content url="https://corpus.example.org/{i}.jpg" medium="image"/>',
                f"<media:title>{escape(g.text())}</media:title>",
                f"<media:description>{escape(g.text())}</media:description>",
                f'<media:thumbnail url="https://corpus.example.org/{i}.png"/>',
                f'<media:content url="https://corpus.example.org/{i}.mp4">'
                f"<media:title>{escape(g.text())}</media:title></media:content>",
                f'<media:group><media:content url="https://corpus.example.org/{i}.jpg"/>'
                f"<media:description>{escape(g.text())}</media:description></media:group>",
                f'<atom:link rel="alternate" href="https://corpus.example.org/alt/{i}"/>',
                f"<itunes:summary>{escape(g.text())}</itunes:summary>",
                f"<wfw:commentRss>https://corpus.example.org/a/{i}/feed</wfw:commentRss>",
                "<slash:comments>3</slash:comments>",
                f'<source url="https://other.example.org/rss">{escape(g.text())}</source>',
            ]
        )
        parts.append(extra)
        if "<media:title>" in extra:
            expected = None  # feedparser's title when the item's own is empty or missing
    g.rng.shuffle(parts)
    sep = g.rng.choice(["", "\n", "\n\t\t"])
    return "<item>" + sep + sep.join(parts) + sep + "</item>", expected


def _rss(g: _Gen, version: str, ns: bool, plain: bool = False) -> tuple[str, list[str | None]]:
    head = []
    if g.maybe(0.9):
        head.append(f"<title>{g.title()[0]}</title>")
    head.append(
        g.rng.choice(
            [
                "<link>https://corpus.example.org/</link>",
                "<link>/home/</link>",
                "<link>https://corpus.example.org/?a=1&amp;b=2</link>",
                "",
            ]
        )
    )
    head.append("<description>Generated feed</description>")
    if g.maybe(0.3):
        head.append(f"<ttl>{g.rng.choice(['30', '60', ' 15 ', 'soon', '0', '-5'])}</ttl>")
    if ns and g.maybe(0.4):
        period = g.rng.choice(["hourly", "daily", " weekly ", "often"])
        head.append(f"<sy:updatePeriod>{period}</sy:updatePeriod>")
        if g.maybe(0.6):
            head.append(
                f"<sy:updateFrequency>{g.rng.choice(['2', '1', '0', 'x'])}</sy:updateFrequency>"
            )
    if ns and g.maybe(0.5):
        head.append(f'<atom:link href="{FEED_URL}" rel="self" type="application/rss+xml"/>')
    if g.maybe(0.2):
        head.append(
            "<image><url>https://corpus.example.org/l.png</url><title>Logo</title>"
            "<link>https://corpus.example.org/</link></image>"
        )
    if g.maybe(0.3):
        head.append("<lastBuildDate>Wed, 03 Jan 2024 12:00:00 +0000</lastBuildDate>")
    items, titles = [], []
    for i in range(g.rng.randint(0, 6)):
        xml, expected = _rss_item(g, i, ns, version, plain)
        items.append(xml)
        titles.append(expected)
    nsdecl = NAMESPACES if ns or plain else ""
    body = (
        f'<rss version="{version}"{nsdecl}><channel>\n'
        + "\n".join(head + items)
        + "\n</channel></rss>\n"
    )
    return body, titles


def _rdf(g: _Gen) -> tuple[str, list[str | None]]:
    items, titles = [], []
    for i in range(g.rng.randint(1, 5)):
        content, expected = g.title()
        link = f"https://corpus.example.org/rdf/{i}"
        items.append(
            f'<item rdf:about="{link}"><title>{content}</title><link>{link}</link>'
            f"<description>{g.summary()}</description>"
            f"<dc:date>2024-01-0{1 + i % 4}T0{i}:00:00Z</dc:date>"
            f"<dc:creator>{escape(g.text())}</dc:creator></item>"
        )
        titles.append(expected)
    body = (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        f' xmlns="http://purl.org/rss/1.0/" {DC}'
        ' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">'
        f'<channel rdf:about="{FEED_URL}"><title>{g.title()[0]}</title>'
        "<link>https://corpus.example.org/</link><description>d</description>"
        "<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>"
        "</channel>" + "".join(items) + "</rdf:RDF>"
    )
    return body, titles


def _atom_title(g: _Gen, atom10: bool) -> tuple[str, str | None]:
    t = g.text()
    choice = g.rng.choice(["text", "html", "xhtml", "plain-markup"])
    if choice == "html":
        attr = ' type="html"' if atom10 else ' mode="escaped" type="text/html"'
        return f"<title{attr}>{escape(f'<b>{escape(t)}</b>')}</title>", t
    if choice == "xhtml" and atom10:
        return (
            '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
            f"<b>{escape(t)}</b></div></title>",
            t,
        )
    if choice == "plain-markup" and atom10:
        return f'<title type="text">{escape("<b>" + t + "</b>")}</title>', None
    return f"<title>{escape(t)}</title>", t


def _atom(g: _Gen, atom10: bool) -> tuple[str, list[str | None]]:
    entries, titles = [], []
    for i in range(g.rng.randint(0, 5)):
        title, expected = _atom_title(g, atom10)
        href = g.rng.choice([f"https://corpus.example.org/e/{i}", f"e/{i}", f"/e/{i}?a=1&amp;b=2"])
        dates = (
            f"<published>2024-01-0{1 + i % 4}T10:00:00Z</published><updated>{g.date()}</updated>"
            if atom10
            else f"<issued>2024-01-0{1 + i % 4}T10:00:00Z</issued><modified>{g.date()}</modified>"
        )
        summary = g.rng.choice(
            [
                f"<summary>{escape(g.text())}</summary>",
                f'<summary type="html">{g.summary()}</summary>',
                f'<content type="html">{g.summary()}</content>',
                "",
            ]
        )
        author = f"<author><name>{escape(g.text())}</name></author>" if g.maybe(0.6) else ""
        entries.append(
            f"<entry><id>urn:corpus:atom:{i}</id>{title}"
            f'<link rel="alternate" href={quoteattr(href)}/>{dates}{summary}{author}</entry>'
        )
        titles.append(expected)
    if atom10:
        head = '<feed xmlns="http://www.w3.org/2005/Atom">'
    else:
        head = '<feed version="0.3" xmlns="http://purl.org/atom/ns#">'
    body = (
        head
        + f"<title>{escape(g.text())}</title>"
        + '<link rel="alternate" href="https://corpus.example.org/"/>'
        + "<id>urn:corpus:feed</id><updated>2024-01-03T12:00:00Z</updated>"
        + "".join(entries)
        + "</feed>"
    )
    return body, titles


def _labels(g: _Gen, xml: str) -> tuple[str, str]:
    """(document with an XML declaration or none, Content-Type header); sets g.decidable."""
    enc = g.encoding
    real = "utf-8" if enc == "utf-8+cp1252" else enc
    legacy = enc not in WIDE and not enc.startswith("utf-8")
    prolog = g.rng.choice(["right", "right", "none", "no-encoding", "utf-8", "wrong", "upper"])
    header = g.rng.choice(["none", "media", "right", "right", "utf-8", "wrong"])
    if enc == "utf-8+cp1252":  # labelled UTF-8 or not labelled: a UTF-8 feed with pasted bytes
        prolog = g.rng.choice(["right", "none", "no-encoding"])
        header = g.rng.choice(["none", "media", "right"])
    wrong = "windows-1251" if real != "windows-1251" else "iso-8859-1"
    label = {
        "right": real,
        "upper": real.upper(),
        "utf-8": "utf-8",
        "wrong": wrong,
    }
    if prolog in ("none",):
        decl = ""
    elif prolog == "no-encoding":
        decl = '<?xml version="1.0"?>'
    else:
        quote = g.rng.choice(['"', "'"])
        decl = f"<?xml version={quote}1.0{quote} encoding={quote}{label[prolog]}{quote}?>"
    media = g.rng.choice(
        ["application/rss+xml", "text/xml", "application/xml", "application/atom+xml"]
    )
    content_type = {
        "none": "",
        "media": media,
        "right": f"{media}; charset={real}",
        "utf-8": f"{media}; charset=UTF-8",
        "wrong": f'{media}; charset="{wrong}"',
    }[header]
    if legacy:
        # Decidable when some label is right and no wrong legacy label outranks it.
        prolog_ok = prolog in ("right", "upper")
        header_ok = header == "right" and prolog not in ("wrong",)
        unlabelled_1252 = (
            enc in ("iso-8859-1", "windows-1252") and prolog != "wrong" and header != "wrong"
        )
        g.decidable = prolog_ok or header_ok or unlabelled_1252
    sep = g.rng.choice(["", "\n"])
    return decl + sep + xml, content_type


def _encode(g: _Gen, doc: str) -> bytes:
    enc = g.encoding
    if enc == "utf-8+cp1252":
        body = doc.encode("utf-8")
        for ch in g.rng.sample(["’", "“", "”", "—", "…", "€", "™"], 3):
            body = body.replace(ch.encode("utf-8"), ch.encode("cp1252"))
        return body
    body = doc.encode(enc, errors="xmlcharrefreplace")
    if enc in WIDE and g.maybe(0.5):
        body = BOMS[enc] + body
    elif enc == "utf-8" and g.maybe(0.1):
        body = codecs.BOM_UTF8 + body
    return body


def corpus(n: int = 400, seed: int = 14) -> list[Case]:
    """``n`` feeds, the same on every run for the same seed."""
    rng = random.Random(seed)
    cases = []
    encodings = list(ENCODINGS)
    for k in range(n):
        encoding = encodings[k % len(encodings)]
        shape = rng.choice(SHAPES)
        g = _Gen(random.Random(rng.getrandbits(64)), encoding, shape)
        if shape in ("rss20", "rss20-ns", "rss20-plain"):
            xml, titles = _rss(g, "2.0", shape == "rss20-ns", shape == "rss20-plain")
        elif shape == "rss09":
            xml, titles = _rss(g, g.rng.choice(["0.91", "0.92"]), False)
        elif shape == "rdf":
            xml, titles = _rdf(g)
        else:
            xml, titles = _atom(g, shape == "atom10")
        doc, content_type = _labels(g, xml)
        body = _encode(g, doc)
        cases.append(
            Case(
                name=f"{k}:{shape}:{encoding}:{content_type or '-'}",
                body=body,
                content_type=content_type,
                shape=shape,
                encoding=encoding,
                titles=tuple(titles) if g.decidable else None,
            )
        )
    return cases
