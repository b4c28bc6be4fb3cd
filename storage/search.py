"""Full-text search: one user-facing query syntax, parsed here and rendered for each backend.

Syntax (docs/search.md): words (``wildfire``), phrases (``"evacuation order"``), prefixes
(``evacuat*``), ``AND`` (implied between terms), ``OR``, ``NOT`` (or a leading ``-``) and
parentheses. Operators are upper case; ``and``/``or``/``not`` in lower case are words. Case and
Latin accents are ignored. A query is parsed into a small tree first, so neither backend ever
sees user text as query syntax: SQLite gets FTS5 strings whose terms are all quoted, PostgreSQL
gets a ``tsquery`` built by SQL functions from bound parameters. A malformed query raises
``QueryError`` with a message for people, never a database error.

Snippets and highlights are made here too, in Python from the stored text, so both backends
show the same snippet for the same article.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from storage.base import ActivityHour, SearchHit

MAX_QUERY_CHARS = 500
MAX_TERMS = 32
MAX_DEPTH = 8
SNIPPET_CHARS = 220
SNIPPET_SCAN = 100_000  # characters of a body searched for the snippet's match

_TOKEN = re.compile(r"[^\W_]+")  # what both indexes take as a word: letters and digits


class QueryError(ValueError):
    """A search query that cannot be understood; the message says why, for people."""


@dataclass(frozen=True, slots=True)
class Term:
    tokens: tuple[str, ...]  # one word, or the words of a phrase
    prefix: bool = False  # the last token is a prefix (``evacuat*``)


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


Node = Term | And | Or | Not


# ----------------------------------------------------------------------------- parsing

_LEX = re.compile(r'\s+|(?P<q>"[^"]*"?)|(?P<p>[()])|(?P<w>[^\s()"]+)')


def _lex(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for m in _LEX.finditer(text):
        if m.group("q") is not None:
            q = m.group("q")
            if len(q) < 2 or not q.endswith('"'):
                raise QueryError('a phrase is missing its closing quote (")')
            out.append(("phrase", q[1:-1]))
        elif m.group("p") is not None:
            out.append((m.group("p"), m.group("p")))
        elif m.group("w") is not None:
            w = m.group("w")
            out.append((w, w) if w in ("AND", "OR", "NOT") else ("word", w))
    return out


def _term(text: str, phrase: bool) -> Term | None:
    raw = unicodedata.normalize("NFC", text.strip())
    prefix = raw.endswith("*")
    if prefix:
        raw = raw.rstrip("*")
        if raw.endswith(" ") or not raw:
            raise QueryError("'*' must follow a word (as in evacuat*)")
    if "*" in raw:
        raise QueryError("'*' is only allowed at the end of a word (as in evacuat*)")
    tokens = tuple(_TOKEN.findall(raw))
    if not tokens:
        if phrase:
            raise QueryError('an empty phrase ("") finds nothing')
        return None  # punctuation alone: nothing to search for
    return Term(tokens, prefix)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.toks = tokens
        self.i = 0
        self.terms = 0

    def peek(self) -> str | None:
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node | None:
        node = self.or_expr(0)
        if self.peek() is not None:
            kind = self.peek()
            raise QueryError("a ')' has no matching '('" if kind == ")" else f"unexpected {kind!r}")
        return node

    def or_expr(self, depth: int) -> Node | None:
        parts = [self.and_expr(depth)]
        while self.peek() == "OR":
            self.take()
            if self.peek() in (None, ")", "OR", "AND"):
                raise QueryError("OR needs a term on both sides")
            parts.append(self.and_expr(depth))
        kept = [p for p in parts if p is not None]
        if len(parts) > 1 and len(kept) < len(parts):
            raise QueryError("OR needs a term on both sides")
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else Or(tuple(kept))

    def and_expr(self, depth: int) -> Node | None:
        parts: list[Node] = []
        while self.peek() not in (None, ")", "OR"):
            if self.peek() == "AND":
                self.take()
                if not parts or self.peek() in (None, ")", "OR", "AND"):
                    raise QueryError("AND needs a term on both sides")
                continue
            node = self.unary(depth)
            if node is not None:
                parts.append(node)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self, depth: int) -> Node | None:
        kind, value = self.take()
        if kind == "NOT":
            if self.peek() in (None, ")", "OR", "AND", "NOT"):
                raise QueryError("NOT needs a term after it")
            child = self.unary(depth)
            return Not(child) if child is not None else None
        if kind == "(":
            if depth + 1 > MAX_DEPTH:
                raise QueryError(f"too many nested parentheses (at most {MAX_DEPTH})")
            inner = self.or_expr(depth + 1)
            if self.peek() != ")":
                raise QueryError("a '(' is missing its ')'")
            self.take()
            if inner is None:
                raise QueryError("empty parentheses")
            return inner
        if kind == "phrase":
            return self.count(_term(value, phrase=True))
        if kind == "word" and value.startswith("-") and len(value) > 1:
            term = self.count(_term(value[1:], phrase=False))
            return Not(term) if term is not None else None
        if kind == "word" and value.startswith("-") and self.peek() == "phrase":
            _, phrase = self.take()
            term = self.count(_term(phrase, phrase=True))
            return Not(term) if term is not None else None
        return self.count(_term(value, phrase=False))

    def count(self, term: Term | None) -> Term | None:
        if term is not None:
            self.terms += 1
            if self.terms > MAX_TERMS:
                raise QueryError(f"too many terms (at most {MAX_TERMS})")
        return term


def _check(node: Node) -> None:
    """What both backends can run: every AND has a term that is not negated; no NOT under OR."""
    if isinstance(node, Not):
        raise QueryError(
            "a query cannot only exclude: add a term to search for (as in fire NOT drill)"
        )
    if isinstance(node, Or):
        for child in node.children:
            if isinstance(child, Not):
                raise QueryError("NOT cannot be one side of an OR: use (a OR b) NOT c")
            _check(child)
    elif isinstance(node, And):
        positives = [c for c in node.children if not isinstance(c, Not)]
        if not positives:
            raise QueryError(
                "a query cannot only exclude: add a term to search for (as in fire NOT drill)"
            )
        for child in node.children:
            if not isinstance(child, Not):
                _check(child)
            elif isinstance(child.child, Not):
                raise QueryError("NOT NOT cancels itself out: leave both out")
            else:
                _check_negated(child.child)


def _check_negated(node: Node) -> None:
    if isinstance(node, (And, Or)):
        for child in node.children:
            if isinstance(child, Not):
                raise QueryError("NOT inside an excluded group is not supported")
            _check_negated(child)


def parse_query(text: str) -> Node:
    """The query as a tree; ``QueryError`` for anything malformed or empty."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is too long (at most {MAX_QUERY_CHARS} characters)")
    node = _Parser(_lex(text)).parse()
    if node is None:
        raise QueryError("the query has no words to search for")
    _check(node)
    return node


def positive_terms(node: Node) -> list[Term]:
    """The terms an article is found by (not the excluded ones): what gets highlighted."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Not):
        return []
    return [t for child in node.children for t in positive_terms(child)]


# ----------------------------------------------------------------------------- rendering


def fts5_query(node: Node) -> str:
    """An FTS5 MATCH expression: every term quoted, so nothing typed is FTS5 syntax."""
    if isinstance(node, Term):
        quoted = '"' + " ".join(node.tokens) + '"'
        return quoted + " *" if node.prefix else quoted
    if isinstance(node, Or):
        return "(" + " OR ".join(fts5_query(c) for c in node.children) + ")"
    if isinstance(node, Not):  # only under And (see _check)
        return fts5_query(node.child)
    positives = [c for c in node.children if not isinstance(c, Not)]
    negatives = [c for c in node.children if isinstance(c, Not)]
    out = "(" + " AND ".join(fts5_query(c) for c in positives) + ")"
    for neg in negatives:
        out = f"({out} NOT {fts5_query(neg)})"
    return out


def pg_tsquery(node: Node, params: list[str]) -> str:
    """A SQL expression building the ``tsquery``; the words go into ``params`` (``%s``).

    Words are folded by the same ``feedwatch_fold`` as the indexed text (migration 0002).
    """
    if isinstance(node, Term):
        words = list(node.tokens)
        last = words.pop() if node.prefix else None
        parts = []
        if words:
            params.append(" ".join(words))
            parts.append("phraseto_tsquery('simple', feedwatch_fold(%s))")
        if last is not None:
            params.append(last)
            parts.append("to_tsquery('simple', quote_literal(feedwatch_fold(%s)) || ':*')")
        expr = parts[0]
        for p in parts[1:]:
            expr = f"tsquery_phrase({expr}, {p})"
        return expr
    if isinstance(node, Not):
        return f"(!! {pg_tsquery(node.child, params)})"
    op = " || " if isinstance(node, Or) else " && "
    return "(" + op.join(pg_tsquery(c, params) for c in node.children) + ")"


# ----------------------------------------------------------------------------- snippets


@lru_cache(maxsize=1)
def _accent_classes() -> dict[str, str]:
    """For each base letter, a regex class of it and its accented Latin forms (é, Ę, ...)."""
    groups: dict[str, set[str]] = {}
    for cp in range(0x00C0, 0x0250):
        ch = chr(cp)
        base = unicodedata.normalize("NFKD", ch)[:1].lower()
        if base.isascii() and base.isalpha() and base != ch.lower():
            groups.setdefault(base, set()).update({ch, ch.lower(), ch.upper()})
    return {b: "".join(sorted(v)) for b, v in groups.items()}


def fold(text: str) -> str:
    """Lower case without Latin accents (as both indexes compare words)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _token_pattern(token: str, prefix: bool) -> str:
    classes = _accent_classes()
    out = []
    for ch in fold(token):
        if ch in classes:
            out.append(f"[{re.escape(ch)}{re.escape(classes[ch])}]")
        else:
            out.append(re.escape(ch))
    return "".join(out) + (r"[^\W_]*" if prefix else "")


@lru_cache(maxsize=256)
def _highlighter(terms: tuple[Term, ...]) -> re.Pattern[str]:
    alternatives = []
    for term in terms:
        pats = [
            _token_pattern(tok, term.prefix and i == len(term.tokens) - 1)
            for i, tok in enumerate(term.tokens)
        ]
        alternatives.append(r"[\W_]+".join(pats))
    alternatives.sort(key=len, reverse=True)
    body = "|".join(alternatives)
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])", re.IGNORECASE)


def highlighter(node: Node | None) -> re.Pattern[str] | None:
    terms = tuple(positive_terms(node)) if node is not None else ()
    return _highlighter(terms) if terms else None


def marks_in(text: str, pattern: re.Pattern[str] | None) -> tuple[tuple[int, int], ...]:
    """Where the query's terms occur in ``text`` (for a title, or a snippet)."""
    if pattern is None or not text:
        return ()
    spans: list[tuple[int, int]] = []
    for m in pattern.finditer(text):
        a, b = m.span()
        if spans and not text[spans[-1][1] : a].strip():
            spans[-1] = (spans[-1][0], b)  # "evacuation order": one mark, not two
        else:
            spans.append((a, b))
    return tuple(spans)


def make_snippet(
    fields: list[str], pattern: re.Pattern[str] | None, width: int = SNIPPET_CHARS
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """About ``width`` characters around the first match in the first field that has one (else
    the start of the first non-empty field), whitespace collapsed, with the matches marked."""
    first = next((f for f in fields if f and f.strip()), "")
    chosen, at = first, -1
    if pattern is not None:
        for f in fields:
            m = pattern.search(f, 0, SNIPPET_SCAN) if f else None
            if m:
                chosen, at = f, m.start()
                break
    if not chosen:
        return "", ()
    if at < 0:
        left, right = 0, min(len(chosen), width)
    else:
        left = max(0, at - width // 3)
        right = min(len(chosen), left + width)
        left = max(0, min(left, right - width))
    if left > 0:
        sp = chosen.find(" ", left, at if at >= 0 else right)
        left = sp + 1 if sp >= 0 else left
    if right < len(chosen):
        sp = chosen.rfind(" ", left, right)
        right = sp if sp > left else right
    text = " ".join(chosen[left:right].split())
    if left > 0:
        text = "…" + text
    if right < len(chosen):
        text += "…"
    return text, marks_in(text, pattern)


# ----------------------------------------------------------------------------- rows


def hit_from_row(
    row: Any, t: Callable[[Any], datetime | None], node: Node | None, watchlists: tuple[str, ...]
) -> SearchHit:
    """A result row (both backends select the same columns) as a ``SearchHit``."""
    pattern = highlighter(node)
    snippet, marks = make_snippet([row["summary"], row["body"]], pattern)
    fetched = t(row["fetched_at"])
    assert fetched is not None
    return SearchHit(
        article_id=row["id"],
        feed_id=row["feed_id"],
        feed_key=row["feed_key"],
        feed_name=row["feed_name"],
        title=row["title"],
        url=row["url"],
        published=t(row["published"]),
        fetched_at=fetched,
        rank=float(row["score"] or 0.0),
        snippet=snippet,
        marks=marks,
        title_marks=marks_in(row["title"], pattern),
        watchlists=watchlists,
    )


def hour_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def fill_hours(
    since: datetime, until: datetime, counts: dict[datetime, dict[str, int]]
) -> list[ActivityHour]:
    """One ``ActivityHour`` per hour from ``since``'s to the one before ``until``'s."""
    out = []
    hour = hour_start(since)
    end = hour_start(until)
    while hour < end:
        c = counts.get(hour, {})
        out.append(
            ActivityHour(
                hour=hour,
                polls=c.get("polls", 0),
                poll_errors=c.get("errors", 0),
                new_articles=c.get("articles", 0),
                alerts=c.get("alerts", 0),
            )
        )
        hour += timedelta(hours=1)
    return out


def query_node(query: str | None) -> Node | None:
    """None for no query (list newest first); else the parsed query (``QueryError``)."""
    if query is None or not query.strip():
        return None
    return parse_query(query)


SNIPPET_SOURCE_CHARS = SNIPPET_SCAN  # how much of summary/body a result row carries
