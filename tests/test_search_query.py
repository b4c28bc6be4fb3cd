"""The search query language (storage/search.py): parsing, what each engine is given, and the
snippets and highlights both backends share. Engines' answers are in the storage contract."""

from __future__ import annotations

from storage.search import (
    And,
    Not,
    Or,
    Term,
    fts5_query,
    highlighter,
    make_snippet,
    marks_in,
    parse_query,
    pg_tsquery,
)


def test_precedence_implied_and_and_negation() -> None:
    assert parse_query("a OR b c") == Or((Term(("a",)), And((Term(("b",)), Term(("c",))))))
    assert parse_query("(a OR b) c -d") == And(
        (Or((Term(("a",)), Term(("b",)))), Term(("c",)), Not(Term(("d",))))
    )
    assert parse_query('"Evacuation  order" ord*') == And(
        (Term(("Evacuation", "order")), Term(("ord",), prefix=True))
    )
    assert parse_query("U.S. wild-fire") == And((Term(("U", "S")), Term(("wild", "fire"))))
    assert parse_query("rock and roll") == And((Term(("rock",)), Term(("and",)), Term(("roll",))))


def test_every_term_reaches_fts5_quoted() -> None:
    node = parse_query('(lisbon OR "porto city") evac* NOT drill')
    assert fts5_query(node) == '((("lisbon" OR "porto city") AND "evac" *) NOT "drill")'
    assert (
        fts5_query(parse_query('NEAR title:x "a""b"')) == '("NEAR" AND "title x" AND "a" AND "b")'
    )


def test_postgres_gets_bound_words_only() -> None:
    params: list[str] = []
    sql = pg_tsquery(parse_query("lisbon' OR x:* evac* -drill"), params)
    assert params == ["lisbon", "x", "evac", "drill"]
    assert "'" not in sql.replace("'simple'", "").replace("':*'", "")
    assert sql.count("%s") == 4


def test_highlights_ignore_case_and_accents_and_respect_word_ends() -> None:
    pattern = highlighter(parse_query('"evacuation order" evac* NOT border'))
    text = "An Évacuation order, then a border order and an evacuee."
    assert [text[a:b] for a, b in marks_in(text, pattern)] == ["Évacuation order", "evacuee"]
    phrase = highlighter(parse_query('"evacuation order"'))
    assert marks_in("evacuation—order!", phrase) == ((0, 16),)
    assert marks_in("reorder", highlighter(parse_query("order"))) == ()


def test_snippets_centre_on_the_first_match_and_cut_at_words() -> None:
    body = (
        ("Lorem ipsum dolor sit amet. " * 20)
        + "Officials issued an evacuation order today. "
        + ("Et cetera. " * 30)
    )
    snippet, marks = make_snippet(["", body], highlighter(parse_query("evacuation")))
    assert snippet.startswith("…") and snippet.endswith("…") and len(snippet) <= 230
    [(a, b)] = marks
    assert snippet[a:b] == "evacuation"
    plain, none = make_snippet(["A short summary.", body], None)
    assert plain == "A short summary." and none == ()
    assert make_snippet(["", ""], None) == ("", ())
