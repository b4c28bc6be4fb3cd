"""Keywords, phrases, wildcards, case and accent folding, require/exclude, feeds, snippets."""

from __future__ import annotations

import pickle
import random
import unicodedata

import pytest

from monitor.match import Document, Match, Matcher
from monitor.match.normalize import DocText, fold_char, normalize
from monitor.match.snippet import make_snippet
from monitor.settings import Watchlist


def build(**kw: object) -> Matcher:
    return Matcher.build([Watchlist(name="w", **kw)])  # type: ignore[arg-type]


def texts(m: Matcher, body: str, title: str = "", summary: str = "") -> list[str]:
    res = m.match(Document(title=title, summary=summary, body=body))
    return [x.text for x in res.get("w", [])]


def test_whole_words_and_phrases_across_punctuation() -> None:
    m = build(keywords=["evacuation order", "FEMA"])
    body = (
        "Officials issued an evacuation-order for three villages on Tuesday, "
        "and fema staff arrived."
    )
    assert texts(m, body) == ["evacuation-order", "fema"]
    assert texts(m, "The Evacuation,\n  Order was lifted at noon.") == ["Evacuation,\n  Order"]
    # whole words only: not inside longer words
    assert texts(m, "The fematology department reorders its evacuation orders.") == []


def test_wildcard_only_extends_the_word_end() -> None:
    m = build(keywords=["wildfire*", "fire*"])
    body = "Wildfires spread overnight; a wildfire-hit town and a bonfire nearby."
    res = m.match(Document("", "", body))["w"]
    found = sorted((x.term, x.text) for x in res)
    assert ("wildfire*", "Wildfires") in found
    assert all(x.text != "bonfire" for x in res)
    assert texts(build(keywords=["fire*"]), "They lit a bonfire and a campfire.") == []
    assert texts(build(keywords=["fire*"]), "Firefighters said the fires were out.") == [
        "Firefighters"
    ]
    # the * stops at punctuation: "wildfire-hit" gives "wildfire"
    assert texts(build(keywords=["wildfire*"]), "A wildfire-hit region.") == ["wildfire"]


def test_star_inside_a_term_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"keywords\[0\].*only allowed at the end"):
        build(keywords=["wild*fire"])


def test_case_folding_unicode() -> None:
    m = build(keywords=["straße", "İstanbul"])
    assert texts(m, "Die STRASSE war gesperrt.") == ["STRASSE"]
    assert texts(m, "Die Strasse war gesperrt, die Straße auch.") == ["Strasse"]
    assert texts(m, "Flights to İSTANBUL resumed.") == ["İSTANBUL"]


def test_accents_ignored_unless_the_term_has_them() -> None:
    plain = build(keywords=["Sao Paulo", "cafe"])
    accented = build(keywords=["São", "café"])
    body = "Heavy rain hit São Paulo; a café in Sao Paulo closed and another cafe flooded."
    assert texts(plain, body) == ["São Paulo", "café"]  # strongest (first) occurrence each
    got = plain.match(Document("", "", body))["w"]
    assert {x.term for x in got} == {"Sao Paulo", "cafe"}
    assert texts(accented, "Rain in Sao Paulo and a cafe.") == []
    assert texts(accented, "Rain in São Paulo and a café.") == ["São", "café"]
    # decomposed accents (NFD) in the article count as accents
    assert texts(accented, "Rain in Sa\u0303o Paulo.") == ["Sa\u0303o"]


def test_require_and_exclude() -> None:
    m = build(keywords=["flood*"], require=["river"], exclude=["drill*", "football"])
    doc = "The river burst its banks and flooding reached the square."
    res = m.match(Document("", "", doc))["w"]
    assert [(x.kind, x.text) for x in res] == [("keyword", "flooding"), ("require", "river")]
    assert m.match(Document("", "", "Flooding reached the square.")) == {}
    # exclusion wins over everything else
    drill = "The river flood drills were held as planned."
    assert m.match(Document("Flood drill", "", drill)) == {}
    assert m.match(Document("", "", "Flooding by the river delayed the football match.")) == {}


def test_require_only_and_empty_watchlists() -> None:
    m = build(require=["earthquake", "Chile"])
    assert m.match(Document("", "", "An earthquake shook Chile.")) != {}
    assert m.match(Document("", "", "An earthquake shook Peru.")) == {}
    everything = build()  # no terms: every article of its feeds matches, with no reasons
    assert everything.match(Document("t", "", "anything")) == {"w": []}


def test_strongest_first_title_before_body() -> None:
    m = build(keywords=["storm", "tornado"], require=["warning"])
    res = m.match(
        Document(
            title="Tornado warning issued for the county",
            summary="",
            body="A storm system moved east. The warning lasts until 9pm.",
        )
    )["w"]
    assert [(x.kind, x.field, x.text) for x in res] == [
        ("keyword", "title", "Tornado"),
        ("keyword", "body", "storm"),
        ("require", "title", "warning"),
    ]


def test_feeds_filter_by_name_and_tag() -> None:
    m = Matcher.build(
        [
            Watchlist(name="any", keywords=["strike"]),
            Watchlist(name="named", keywords=["strike"], feeds=["Example World"]),
            Watchlist(name="tagged", keywords=["strike"], feeds=["tag:labour"]),
        ]
    )
    body = "Rail workers began a strike on Monday."
    assert set(m.match(Document("", "", body))) == {"any"}
    assert set(m.match(Document("", "", body, feed_name="Example World"))) == {"any", "named"}
    assert set(m.match(Document("", "", body, feed_name="Other", feed_tags=("labour",)))) == {
        "any",
        "tagged",
    }
    assert m.watchlist_names() == ["any", "named", "tagged"]


def test_snippet_length_word_boundaries_and_payload() -> None:
    m = build(keywords=["evacuation order"])
    words = [f"word{i:03d}" for i in range(200)]
    body = " ".join(words[:100]) + " an evacuation order was issued " + " ".join(words[100:])
    match = m.match(Document("", "", body))["w"][0]
    assert isinstance(match, Match)
    snip = match.snippet
    assert snip.startswith("…") and snip.endswith("…")
    inner = snip.strip("…")
    assert "evacuation order" in inner
    assert 150 <= len(snip) <= 205
    for piece in inner.split():  # never a cut word
        assert piece in body.split()
    assert match.to_payload() == {
        "kind": "keyword",
        "term": "evacuation order",
        "text": "evacuation order",
        "snippet": snip,
    }
    assert body[match.start : match.start + len(match.text)] == match.text
    assert match.field == "body"


def test_snippet_short_text_and_edges() -> None:
    assert make_snippet("Fire in the hills.", 0, 4) == "Fire in the hills."
    text = "x" * 50 + " start " + "y" * 300
    snip = make_snippet(text, 51, 56)
    assert snip.startswith("x" * 50 + " start")
    assert snip.endswith("…")
    assert make_snippet("a\n\n  b   target  c", 9, 15) == "a b target c"


def test_matcher_pickles() -> None:
    m = build(keywords=["wildfire*"], exclude=["drill"])
    again = pickle.loads(pickle.dumps(m))
    doc = Document("Wildfires in the north", "", "")
    assert again.match(doc) == m.match(doc)
    assert again.match(doc)["w"][0].text == "Wildfires"


def test_unusable_terms_are_errors() -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        build(keywords=["---"])


def reference_words(text: str) -> list[str]:
    """The definition, character by character: NFC, then fold_char."""
    nfc = unicodedata.normalize("NFC", text)
    return "".join(fold_char(c) for c in nfc).split()


def test_normalisation_is_the_per_character_definition() -> None:
    rng = random.Random(7)
    alphabet = "abcXYZ éÉàñøŁß İ ﬁ,.-–—“”'’\n\t\u00a0МоскваЁё東京1_*\u0301\u0308ＡＢ１🔥𝐁\u00ad"
    for _ in range(300):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert normalize(s) == " " + " ".join(reference_words(s)) + " ", s
        # every word maps back to an original span that normalises to it
        dt = DocText((s, "", ""))
        body = dt.norm.split("\x00")[0]
        for word_start in [i for i in range(1, len(body) - 1) if body[i - 1] == " "]:
            word_end = body.index(" ", word_start)
            field, a, b = dt.span(word_start, word_end)
            assert field == 0
            assert normalize(s[a:b]).strip() == body[word_start:word_end], (s, a, b)


def test_unicode_forms_fold_alike() -> None:
    """Decomposed accents, full-width forms and the Turkish dotted I: one normalisation."""
    m = build(keywords=["café", "Київ", "Tokyo", "istanbul", "Straße"])
    assert texts(m, "Un cafe\u0301 au coin.") == ["cafe\u0301"]  # NFD text, NFC term
    assert texts(build(keywords=["cafe\u0301"]), "Un café au coin.") == ["café"]  # and back
    assert texts(m, "Удари по Ки\u0457ву.") == []  # a different word: only Київ itself
    assert texts(m, "Вибухи у Ки\u0456\u0308в вночі.") == ["Ки\u0456\u0308в"]
    assert texts(m, "Flights to ＴＯＫＹＯ resumed.") == ["ＴＯＫＹＯ"]
    assert texts(m, "İSTANBUL and ıstanbul") == ["İSTANBUL"]
    assert texts(m, "Die STRASSE war gesperrt.") == ["STRASSE"]
    # the snippet shows the original characters
    got = m.match(Document("", "", "Ein Cafe\u0301 in der Stra\u00dfe."))["w"]
    assert [x.text for x in got] == ["Cafe\u0301", "Stra\u00dfe"]
    assert got[0].snippet == "Ein Cafe\u0301 in der Stra\u00dfe."
