"""The per-document normalisation (numpy fast path vs per-field path) and Matcher.explain."""

from __future__ import annotations

import random
import re

import pytest

from monitor.match import Document, Explanation, Matcher
from monitor.match.normalize import DocText, normalize
from monitor.settings import Watchlist

ALPHABET = "abcXYZ éÉàñøŁß İ ﬁ,.-–—“”'’\n\t\u00a0\u00ad\u0303\u0308МоскваЁёї東京1_*\x00🔥ＡＢ"
WORD = re.compile(r"[^ \x00]+")


def _words(dt: DocText) -> list[tuple[str, tuple[int, int, int]]]:
    return [(m.group(), dt.span(*m.span())) for m in WORD.finditer(dt.norm)]


@pytest.mark.parametrize("length", [30, 400])  # 400: more than 64 odd characters per document
def test_document_words_are_each_fields_words(length: int) -> None:
    rng = random.Random(length)
    for _ in range(400):
        texts = tuple(
            "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, length))) for _ in range(3)
        )
        dt = DocText(texts)  # type: ignore[arg-type]
        fields = dt.norm.split("\x00")
        assert len(fields) == 3, texts
        for text, got in zip(texts, fields, strict=True):
            assert got.split() == normalize(text.replace("\x00", " ")).split(), texts
        # each word maps back to original characters that normalise to it, in its own field
        for word, (field, a, b) in _words(dt):
            if word != "\x00":
                assert normalize(texts[field][a:b]).strip() == word, (texts, field, a, b)


def test_document_words_never_join_fields() -> None:
    texts = ("Evacuation", "order issued", "  ")
    dt = DocText(texts)
    assert dt.norm.split("\x00")[0].split() == normalize(texts[0]).split()
    m = Matcher.build([Watchlist(name="w", keywords=["evacuation order"])])
    assert m.match(Document(*texts)) == {}  # a phrase never spans title and summary


def test_text_outside_the_bmp() -> None:
    m = Matcher.build([Watchlist(name="w", keywords=["wildfire*"])])
    res = m.match(Document("🔥 Wildfires 🔥", "", "Smoke 😷 from the wildfire's edge."))["w"]
    assert [(x.field, x.text, x.start) for x in res] == [("title", "Wildfires", 2)]


def _explain(m: Matcher, body: str, title: str = "", feed: str | None = None) -> Explanation:
    return m.explain(Document(title=title, summary="", body=body, feed_name=feed), "w")


def test_explain_says_why_not() -> None:
    m = Matcher.build(
        [
            Watchlist(
                name="w",
                keywords=["wildfire*"],
                places=["Bath"],
                require=["evacuation"],
                exclude=["drill*"],
            )
        ]
    )
    ex = _explain(m, "Wildfires and an evacuation near the town; the drills went on.")
    assert not ex.matched and ex.matches == ()
    assert ex.reasons == ("excluded by 'drill*', found 'drills' in the body",)
    assert [(f.kind, f.term, f.text, f.field) for f in ex.set_aside] == [
        ("exclude", "drill*", "drills", "body")
    ]
    assert ex.set_aside[0].snippet.endswith("the drills went on.")
    assert ex.set_aside[0].start == len("Wildfires and an evacuation near the town; the ")
    # what was found all the same, as match would report it
    assert [(x.kind, x.term, x.text) for x in ex.partial] == [
        ("keyword", "wildfire*", "Wildfires"),
        ("require", "evacuation", "evacuation"),
    ]

    ex = _explain(m, "Wildfires spread overnight.")
    assert ex.reasons == ("required term 'evacuation' missing",)

    ex = _explain(m, "The evacuation was orderly. Bath time was cancelled.")
    assert ex.reasons[-1] == "no keyword or place found (1 place mention set aside, see below)"
    (aside,) = [f for f in ex.set_aside if f.kind == "place"]
    assert aside.text == "Bath" and "start of a sentence" in aside.reason

    ok = _explain(m, "An evacuation order as wildfires neared Bath, England.")
    assert ok.matched and ok.reasons == ()
    assert [(x.kind, x.term, x.text) for x in ok.matches] == [
        ("keyword", "wildfire*", "wildfires"),
        ("place", "Bath", "Bath"),
        ("require", "evacuation", "evacuation"),
    ]
    # explain runs the same rules as match
    doc = Document("", "", "An evacuation order as wildfires neared Bath, England.")
    assert list(ok.matches) == m.match(doc)["w"]


def test_explain_person_names_longer_places_and_feeds() -> None:
    m = Matcher.build([Watchlist(name="w", places=["London", "York"], feeds=["Desk"])])
    ex = _explain(m, "Jack London wrote it in New York.", feed="Desk")
    reasons = {(f.text, f.reason) for f in ex.set_aside}
    assert ("London", "part of a person's name") in reasons
    assert ("York", "part of the longer place name 'New York'") in reasons
    assert ex.reasons == ("no keyword or place found (2 place mentions set aside, see below)",)
    other = _explain(m, "Flooding in London.", feed="Elsewhere")
    assert not other.matched
    assert other.reasons == ("feed 'Elsewhere' is not one this watchlist watches (Desk)",)
    with pytest.raises(KeyError):
        m.explain(Document("", "", ""), "nope")
