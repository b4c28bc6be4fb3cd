"""The lxml fast path against the feedparser path on a generated corpus (tests/feedcorpus.py).

Wherever the fast path takes a feed it must give exactly what feedparser gives: every Entry field
and the feed's title, link, ttl, warning and format. Where they would differ, the fast path must
decline. The corpus also checks what a reader sees: the item titles as the feed meant them,
whatever the encoding and labels (where those make it decidable).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from monitor.models import ParsedFeed
from monitor.parse import _as_utf8, _fast_rss, _header_charset, _parse_xml_feed, parse_feed
from tests.feedcorpus import FEED_URL, Case, corpus

NOW = datetime(2024, 1, 5, tzinfo=UTC)
CASES = corpus(400, seed=14)


def slow_and_fast(case: Case) -> tuple[ParsedFeed, ParsedFeed, bool]:
    """(feedparser path, default path, whether the fast path took it)."""
    slow = _parse_xml_feed(case.body, FEED_URL, case.content_type, NOW, fast=False)
    fast = _parse_xml_feed(case.body, FEED_URL, case.content_type, NOW, fast=True)
    body, _ = _as_utf8(case.body, _header_charset(case.content_type))
    return slow, fast, _fast_rss(body, FEED_URL, NOW) is not None


def test_fast_path_equals_feedparser_on_the_corpus() -> None:
    taken: Counter[str] = Counter()
    differ = []
    for case in CASES:
        slow, fast, took = slow_and_fast(case)
        taken[case.shape] += took
        if fast != slow:
            differ.append((case.name, fast, slow))
    assert not differ, "\n\n".join(f"{n}\nfast {f}\nslow {s}" for n, f, s in differ[:5])
    # The comparison proves something only if the fast path takes a good share of RSS 2.0 feeds
    # (plain RSS 2.0 and the namespaced kind it knows) and nothing else.
    rss20 = sum(1 for c in CASES if c.shape == "rss20")
    assert taken["rss20"] >= rss20 * 0.3, (taken, rss20)
    assert taken["rss20-ns"] > 0, taken
    assert sum(taken[s] for s in ("rss09", "rdf", "atom10", "atom03")) == 0, taken


def test_corpus_covers_every_encoding_and_shape() -> None:
    encodings = Counter(c.encoding for c in CASES)
    shapes = Counter(c.shape for c in CASES)
    assert min(encodings.values()) >= 25 and len(encodings) == 13, encodings
    assert min(shapes.values()) >= 25, shapes
    boms = sum(1 for c in CASES if c.body[:2] in (b"\xff\xfe", b"\xfe\xff"))
    assert 0 < boms < sum(encodings[e] for e in encodings if e.startswith("utf-16"))
    # same seed, same corpus: a failure names a case that can be rebuilt
    assert [c.body for c in corpus(20, seed=14)] == [c.body for c in CASES[:20]]


def test_titles_read_as_the_feed_meant_them() -> None:
    checked = 0
    wrong = []
    for case in CASES:
        feed = parse_feed(case.body, FEED_URL, case.content_type, now=NOW)
        if case.titles is None:
            continue
        got = tuple(e.title for e in feed.entries)
        expected = case.titles
        if case.shape in ("rss20", "rss20-ns", "rss09"):
            assert len(got) == len(expected), case.name
        for g, e in zip(got, expected, strict=False):
            if e is not None:
                checked += 1
                if g != e:
                    wrong.append((case.name, g, e))
    assert not wrong, wrong[:10]
    assert checked > 600
