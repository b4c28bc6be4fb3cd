"""The matcher: every term of every watchlist in one Aho-Corasick automaton.

Build once per config (:meth:`Matcher.build`), then :meth:`Matcher.match` each article. Each
field is normalised once (:mod:`monitor.match.normalize`), scanned once, and every hit is
checked against the uses of its key (which watchlist, which kind of term, place rules).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ahocorasick_rs

from monitor.match.keywords import Term, automaton_key, parse_term
from monitor.match.normalize import DocText, accent_key, accents_agree, normalize, tables
from monitor.match.places import (
    cued,
    cyrillic_forms,
    headline_cased,
    is_all_caps,
    is_capitalised,
    is_german,
    person_name,
    sentence_initial,
    street_name,
)
from monitor.match.snippet import make_snippet
from monitor.match.wordlists import (
    COMMON_WORDS,
    CUES,
    FIRST_NAMES,
    GERMAN_CUES,
    GERMAN_WORDS,
    WORDLIKE,
)

if TYPE_CHECKING:
    from monitor.match.gazetteer import Gazetteer, Place
    from monitor.settings import PlaceSpec, Watchlist

log = logging.getLogger(__name__)

FIELDS = ("title", "summary", "body")
KEYWORD, PLACE, REQUIRE, EXCLUDE, CONTEXT, BLOCK = range(6)
# A namesake picked with `country:` stands on its own unless the biggest place of that name has
# more than this many times its population (Valencia, Spain vs Venezuela: 2x, on its own;
# Paris, Texas vs France: 86x, needs its own context). See docs/matching.md.
NAMESAKE_RATIO = 10.0
_KIND_NAMES = {KEYWORD: "keyword", PLACE: "place", REQUIRE: "require"}
# countries whose towns Russian and Ukrainian text names in their case forms
CYRILLIC_COUNTRIES = frozenset("RU UA BY KZ KG TJ UZ TM AZ AM GE MD BG RS MK ME BA MN".split())
_KIND_RANK = {KEYWORD: 0, PLACE: 0, REQUIRE: 1}


class WatchlistError(ValueError):
    """Every unusable term and unknown place of a set of watchlists, one line each
    (``watchlists[2].places[1]: unknown place 'Atlantisville'``), in ``errors``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(slots=True)
class Match:
    """One reason a watchlist matched an article. Read-only by convention (not ``frozen``: a
    frozen dataclass costs 1.1 µs instead of 0.4 µs to build, and a busy article has dozens)."""

    kind: str  # "keyword" | "place" | "require"
    term: str  # as configured (for a place: the configured place name)
    text: str  # as found in the article (original characters)
    snippet: str  # ~200 chars around it, cut at word boundaries, "…" where cut
    field: str  # "title" | "summary" | "body"
    start: int  # offset of `text` in that field
    place: str | None = None  # for places: the gazetteer place found (e.g. a town within_km)

    def to_payload(self) -> dict[str, str]:
        """The webhook payload form: exactly kind, term, text and snippet."""
        return {"kind": self.kind, "term": self.term, "text": self.text, "snippet": self.snippet}


@dataclass(frozen=True, slots=True)
class Finding:
    """Something that kept a term from counting: an exclude term found, a place set aside."""

    kind: str  # "exclude" | "place" | "keyword" | "require"
    term: str  # as configured
    text: str  # as found
    field: str
    snippet: str
    reason: str  # e.g. "part of a person's name"
    place: str | None = None
    start: int = 0  # offset of `text` in its field


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a watchlist matches an article or not (:meth:`Matcher.explain`)."""

    watchlist: str
    matched: bool
    matches: tuple[Match, ...]  # exactly what Matcher.match reports for it
    reasons: tuple[str, ...]  # when not matched: one line each, most decisive first
    set_aside: tuple[Finding, ...]  # exclude terms found, place mentions that did not count
    # when not matched: the terms that were found all the same (an excluded article's keywords)
    partial: tuple[Match, ...] = ()


@dataclass(frozen=True, slots=True)
class Document:
    """The text of one article, as matching sees it."""

    title: str
    summary: str
    body: str
    feed_name: str | None = None
    feed_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Use:
    """One meaning of an automaton key: a term of a watchlist, a context word or a blocker."""

    kind: int
    wl: int = -1  # watchlist index (-1: context / blocker)
    slot: int = 0  # term number within its watchlist (KEYWORD/PLACE share the "any" slots)
    term: str = ""  # as configured
    accents: str | None = None  # accent-keeping term form when the term has accents
    place: str | None = None  # gazetteer label (places)
    common: bool = False  # the name is a common word: proper-noun position or context needed
    noun: bool = False  # a German word: in German text, context or a cue ("in Wald") needed
    needs_context: bool = False  # a smaller namesake of a bigger place: its context needed
    context: int = -1  # context group that confirms this place
    rivals: tuple[int, ...] = ()  # context groups of namesakes elsewhere
    # for explanations only: the place as a reader tells it apart ("Valencia, Spain"), the
    # namesake each rival group points to, and (needs_context) which bigger namesake wins
    desc: str = ""
    rival_names: tuple[str, ...] = ()
    note: str = ""


@dataclass(slots=True)
class _Key:
    key: str
    length: int
    lead: int  # 1 when the key starts with a boundary space
    trail: int  # 1 when it ends with one
    prefix: bool
    uses: list[_Use] = field(default_factory=list)
    spatial: bool = False  # a place or blocker: takes part in longest-name resolution


@dataclass(frozen=True, slots=True)
class _Watchlist:
    name: str
    feeds: frozenset[str]
    tags: frozenset[str]
    n_any: int  # keywords + places
    n_require: int
    require: tuple[str, ...] = ()  # as configured (for explanations)

    def wants(self, doc: Document) -> bool:
        if not self.feeds and not self.tags:
            return True
        if doc.feed_name is not None and doc.feed_name in self.feeds:
            return True
        return any(t in self.tags for t in doc.feed_tags)


# One occurrence of a term: (field index, start, end, text as found, use, pending), where
# pending says why the place needs its own context group in the article ("" when it does not).
# A bare tuple: a busy article has dozens and most never become a Match.
_Candidate = tuple[int, int, int, str, _Use, str]


class _Found:
    """What one scan of an article found, before the per-watchlist decision."""

    __slots__ = ("best", "cond", "context_text", "excluded", "present")

    def __init__(self) -> None:
        # (watchlist, kind, slot, place) -> its earliest plain occurrence
        self.best: dict[tuple[int, int, int, str | None], _Candidate] = {}
        self.cond: list[_Candidate] = []  # places that depend on what else the article names
        self.excluded: set[int] = set()  # watchlists vetoed by an exclude term
        self.present: set[int] = set()  # context atoms named in the article
        self.context_text: dict[int, str] = {}  # explain only: a context word as found, per atom


class Matcher:
    """Compiled watchlists. Pure and synchronous; picklable (the automaton pickles)."""

    def __init__(
        self,
        watchlists: list[_Watchlist],
        keys: list[_Key],
        automata: tuple[_Automaton | None, _Automaton | None],
        groups: list[frozenset[int]] | None = None,
    ) -> None:
        self._watchlists = watchlists
        self._keys = keys
        # context group -> the atoms (sets of words) any of which confirms it
        self._groups = groups or []
        # watchlists with no keywords, places or require: every article of their feeds
        self._always = [i for i, w in enumerate(watchlists) if not (w.n_any or w.n_require)]
        # feed filters: most watchlists have none, so most articles reuse one all-true list
        self._filtered = [i for i, w in enumerate(watchlists) if w.feeds or w.tags]
        self._all_active = [True] * len(watchlists)
        self._spatial = [k.spatial for k in keys]
        # The common key: one keyword/require term of one watchlist, no accents to check.
        # (watchlist, ident, use) lets the scan loop skip the general rules for it.
        self._plain: list[tuple[int, tuple[int, int, int, None], _Use] | None] = [
            (u.wl, (u.wl, u.kind, u.slot, None), u)
            if len(k.uses) == 1
            and (u := k.uses[0]).kind in (KEYWORD, REQUIRE)
            and u.accents is None
            else None
            for k in keys
        ]
        # Keys that start with a word-boundary space, and keys that start with a character of a
        # script written without spaces (CJK, Thai). Two automata so that the second only runs
        # on the articles that contain such characters.
        self._automaton, self._unspaced = automata

    # ------------------------------------------------------------------ build

    @classmethod
    def build(cls, watchlists: Sequence[Watchlist]) -> Matcher:
        """Compile every watchlist.

        Raises :class:`WatchlistError` listing every unusable term and unknown place at once.
        The gazetteer is opened only when a watchlist names places.
        """
        t0 = time.perf_counter()
        builder = _Builder()
        compiled = []
        errors: list[str] = []

        def attempt(where: str, fn: Any, *args: Any) -> None:
            try:
                fn(*args)
            except ValueError as exc:
                errors.append(f"{where}: {exc}")

        for i, wl in enumerate(watchlists):
            where = f"watchlists[{i}]"
            slot = 0
            for j, raw in enumerate(wl.keywords):
                attempt(f"{where}.keywords[{j}]", builder.add_term, KEYWORD, i, slot, raw)
                slot += 1
            for j, spec in enumerate(wl.places):
                attempt(f"{where}.places[{j}]", builder.add_place, i, slot, spec)
                slot += 1
            for j, raw in enumerate(wl.require):
                attempt(f"{where}.require[{j}]", builder.add_term, REQUIRE, i, j, raw)
            for j, raw in enumerate(wl.exclude):
                attempt(f"{where}.exclude[{j}]", builder.add_term, EXCLUDE, i, j, raw)
            compiled.append(
                _Watchlist(
                    name=wl.name,
                    feeds=frozenset(f for f in wl.feeds if not f.startswith("tag:")),
                    tags=frozenset(f[4:] for f in wl.feeds if f.startswith("tag:")),
                    n_any=slot,
                    n_require=len(wl.require),
                    require=tuple(wl.require),
                )
            )
        if errors:
            raise WatchlistError(errors)
        builder.add_blockers()
        tables()  # the normalisation tables: loaded here rather than on the first article
        matcher = cls(compiled, builder.keys, builder.automata(), builder.group_atoms)
        log.info(
            "matcher built watchlists=%d keys=%d seconds=%.3f",
            len(compiled),
            len(builder.keys),
            time.perf_counter() - t0,
        )
        return matcher

    def watchlist_names(self) -> list[str]:
        return [w.name for w in self._watchlists]

    @property
    def key_count(self) -> int:
        return len(self._keys)

    # ------------------------------------------------------------------ matching

    def scan(self, text: str) -> list[tuple[int, int, str]]:
        """Raw whole-word hits in ``text``: (start, end, normalised key) in original offsets.

        No watchlist logic: for benchmarks and diagnostics.
        """
        dt = DocText(("", "", text))
        out = []
        for s, e, kid in self._hits(dt):
            _, os_, oe = dt.span(s, e)
            out.append((os_, oe, self._keys[kid].key))
        return out

    def _hits(self, dt: DocText) -> list[tuple[int, int, int]]:
        """(word start, word end, key id) in normalised offsets, all overlapping hits."""
        out: list[tuple[int, int, int]] = []
        if self._automaton is not None:
            self._automaton.hits(dt.norm, out)
        if self._unspaced is not None and dt.unspaced:
            self._unspaced.hits(dt.norm, out)
        return out

    def match(self, doc: Document) -> dict[str, list[Match]]:
        """Watchlist name -> its matches (strongest first), only for watchlists that match."""
        active = self._all_active
        if self._filtered:
            active = active.copy()
            wls = self._watchlists
            for i in self._filtered:
                active[i] = wls[i].wants(doc)
        if not any(active):
            return {}
        texts = (doc.title or "", doc.summary or "", doc.body or "")
        found = self._collect(texts, active, None)
        return self._decide(found, texts, active, None)

    def explain(self, doc: Document, name: str) -> Explanation:
        """Why watchlist ``name`` does or does not match ``doc``: for ``feedwatch try``.

        Same rules as :meth:`match` (it runs the same code), plus what was set aside: exclude
        terms found, required terms missing, place mentions that did not count and why.
        """
        idx = next((i for i, w in enumerate(self._watchlists) if w.name == name), None)
        if idx is None:
            raise KeyError(name)
        wl = self._watchlists[idx]
        active = [i == idx for i in range(len(self._watchlists))]
        if not wl.wants(doc):
            feeds = ", ".join([*sorted(wl.feeds), *(f"tag:{t}" for t in sorted(wl.tags))])
            why = (
                f"feed {doc.feed_name or '(unnamed)'!r} is not one this watchlist watches ({feeds})"
            )
            return Explanation(name, False, (), (why,), ())
        texts = (doc.title or "", doc.summary or "", doc.body or "")
        trace: dict[tuple[Any, ...], Finding] = {}
        found = self._collect(texts, active, trace)
        matches = self._decide(found, texts, active, trace).get(name, [])
        aside = tuple(f for k, f in trace.items() if k[0] == idx)
        if matches:
            return Explanation(name, True, tuple(matches), (), aside)
        cands = [c for ident, c in found.best.items() if ident[0] == idx]
        cands.sort(key=_strength)
        partial = tuple(_matches(cands, texts, {}))
        reasons = [
            f"excluded by {f.term!r}, found {f.text!r} in the {f.field}"
            for f in aside
            if f.kind == "exclude"
        ]
        have = {c[4].slot for c in found.best.values() if c[4].wl == idx and c[4].kind == REQUIRE}
        reasons += [
            f"required term {t!r} missing" for j, t in enumerate(wl.require) if j not in have
        ]
        if wl.n_any and not any(c[4].wl == idx and c[4].kind <= PLACE for c in found.best.values()):
            n_aside = sum(1 for f in aside if f.kind == "place")
            more = (
                f" ({n_aside} place mention{'s' if n_aside != 1 else ''} set aside, see below)"
                if n_aside
                else ""
            )
            reasons.append(f"no keyword or place found{more}")
        return Explanation(name, False, (), tuple(reasons), aside, partial)

    def _collect(
        self,
        texts: tuple[str, str, str],
        active: list[bool],
        trace: dict[tuple[Any, ...], Finding] | None,
    ) -> _Found:
        """One normalisation and one scan of the whole article; the best occurrence per term.

        Plain occurrences keep only the earliest (field, offset) per (watchlist, term, place),
        as bare tuples; no :class:`Match` or snippet is built until a watchlist is known to
        match. Occurrences whose validity depends on what else the article names (common-word
        places, namesakes) are kept aside and settled in :meth:`_decide`.
        """
        dt = DocText(texts)
        hits = self._hits(dt)
        res = _Found()
        if not hits:
            return res
        keys = self._keys
        best = res.best
        cond = res.cond
        excluded = res.excluded
        present = res.present
        # place hits inside a longer place name: worked out on the first place hit (an article
        # that names no watched place never needs them)
        contained: set[int] | None = None
        title_headline: bool | None = None
        german: bool | None = None  # worked out on the first German-noun place found
        plain = self._plain
        span = dt.span
        # DocText.span inlined for the one-pass normalisation (the common case): it runs for
        # every hit
        src, (b1, b2) = dt.offsets()
        for n, (s, e, kid) in enumerate(hits):
            p = plain[kid]
            if p is not None:
                wl = p[0]
                if active[wl] and (wl not in excluded or trace is not None):
                    if src is None:
                        rank, os_, oe = span(s, e)
                    else:
                        os_ = src[s - 1]
                        oe = src[e - 2] + 1
                        if os_ < b1:
                            rank = 0
                        elif os_ < b2:
                            rank, os_, oe = 1, os_ - b1, oe - b1
                        else:
                            rank, os_, oe = 2, os_ - b2, oe - b2
                    old = best.get(p[1])
                    if old is None or rank < old[0] or (rank == old[0] and os_ < old[1]):
                        best[p[1]] = (rank, os_, oe, texts[rank][os_:oe], p[2], "")
                continue
            found: str | None = None
            rank = os_ = oe = 0
            text = ""
            for use in keys[kid].uses:
                kind = use.kind
                if kind == CONTEXT:
                    present.add(use.slot)
                    if trace is not None and use.slot not in res.context_text:
                        r, a, b = dt.span(s, e)
                        res.context_text[use.slot] = texts[r][a:b]
                    continue
                wl = use.wl
                if kind == BLOCK or not active[wl] or (wl in excluded and trace is None):
                    continue
                if found is None:
                    rank, os_, oe = dt.span(s, e)
                    text = texts[rank]
                    found = text[os_:oe]
                if kind == PLACE and contained is None:
                    contained = self._contained(hits, dt, texts) if len(hits) > 1 else set()
                if kind == PLACE and n in contained:  # type: ignore[operator]
                    if trace is not None:
                        outer = self._outer(hits, n, dt, texts)
                        self._aside(
                            trace,
                            use,
                            rank,
                            os_,
                            oe,
                            found,
                            texts,
                            f"part of the longer place name {outer!r}",
                        )
                    continue
                if use.accents is not None and not accents_agree(
                    use.accents, accent_key(found), kind != PLACE and use.term.endswith("*")
                ):
                    continue
                if kind == EXCLUDE:
                    excluded.add(wl)
                    if trace is not None:
                        self._aside(trace, use, rank, os_, oe, found, texts, "excluded")
                    continue
                pending = ""
                if kind == PLACE:
                    if not is_capitalised(found):
                        if trace is not None:
                            self._aside(
                                trace,
                                use,
                                rank,
                                os_,
                                oe,
                                found,
                                texts,
                                "not capitalised (a place is a proper noun)",
                            )
                        continue
                    if person_name(text, os_, oe, keys[kid].key.strip(" ")):
                        if trace is not None:
                            self._aside(
                                trace, use, rank, os_, oe, found, texts, "part of a person's name"
                            )
                        continue
                    if street_name(text, os_, oe):
                        if trace is not None:
                            self._aside(
                                trace, use, rank, os_, oe, found, texts, "the name of a street"
                            )
                        continue
                    if use.common:
                        if is_all_caps(found):
                            pending = "in all caps"
                        elif sentence_initial(text, os_):
                            pending = "at the start of a sentence or line"
                        elif rank == 0:
                            if title_headline is None:
                                title_headline = headline_cased(texts[0])
                            if title_headline and not cued(text, os_, CUES):
                                pending = "in a headline-cased title"
                    if use.noun and not pending:
                        if german is None:
                            german = is_german(dt.norm)
                        if german and not cued(text, os_, GERMAN_CUES):
                            pending = "in German text, where every noun is capitalised"
                    if use.needs_context:
                        pending = pending or "namesake"
                    if pending or use.rivals:
                        cond.append((rank, os_, oe, found, use, pending))
                        continue
                ident = (wl, kind, use.slot, use.place)
                old = best.get(ident)
                if old is None or rank < old[0] or (rank == old[0] and os_ < old[1]):
                    best[ident] = (rank, os_, oe, found, use, "")
        return res

    def _outer(
        self, hits: list[tuple[int, int, int]], n: int, dt: DocText, texts: tuple[str, str, str]
    ) -> str:
        """The longer place name that contains hit ``n`` (for explanations)."""
        s, e, _ = hits[n]
        spans = [
            (hs, he)
            for hs, he, kid in hits
            if self._keys[kid].spatial
            and hs <= s
            and he >= e
            and (hs, he) != (s, e)
            and is_capitalised(texts[dt.span(hs, he)[0]][dt.span(hs, he)[1] :])
        ]
        if not spans:
            return ""
        hs, he = min(spans, key=lambda x: x[0] - x[1])
        rank, os_, oe = dt.span(hs, he)
        return texts[rank][os_:oe]

    @staticmethod
    def _aside(
        trace: dict[tuple[Any, ...], Finding],
        use: _Use,
        rank: int,
        start: int,
        end: int,
        found: str,
        texts: tuple[str, str, str],
        reason: str,
    ) -> None:
        kind = "exclude" if use.kind == EXCLUDE else _KIND_NAMES[use.kind]
        key = (use.wl, kind, use.slot, use.place, reason)
        if key not in trace:
            trace[key] = Finding(
                kind,
                use.term,
                found,
                FIELDS[rank],
                make_snippet(texts[rank], start, end),
                reason,
                use.place,
                start,
            )

    def _contained(
        self, hits: list[tuple[int, int, int]], dt: DocText, texts: tuple[str, str, str]
    ) -> set[int]:
        """Indexes of place hits inside a longer place/blocker hit (``York`` in ``New York``).

        Only a capitalised longer name contains (``del Zulia`` in running text is not the
        place "Del Zulia")."""
        spatial = self._spatial
        idx = [n for n, (_s, _e, kid) in enumerate(hits) if spatial[kid]]
        if len(idx) < 2:
            return set()
        containers = []
        for n in idx:
            s, e, _ = hits[n]
            rank, a, b = dt.span(s, e)
            if is_capitalised(texts[rank][a:b]):
                containers.append((s, e))
        out: set[int] = set()
        for n in idx:
            s, e, _ = hits[n]
            for cs, ce in containers:
                if cs <= s and e <= ce and ce - cs > e - s:
                    out.add(n)
                    break
        return out

    def _decide(
        self,
        found: _Found,
        texts: tuple[str, str, str],
        active: list[bool],
        trace: dict[tuple[Any, ...], Finding] | None,
    ) -> dict[str, list[Match]]:
        """Settle conditional places, apply require/exclude/any per watchlist, build Matches."""
        best = found.best
        excluded = found.excluded
        present = found.present
        for c in found.cond:
            rank, start, end, text, use, pending = c
            if use.wl in excluded and trace is None:
                continue
            groups = self._groups
            own = use.context >= 0 and not present.isdisjoint(groups[use.context])
            reason = ""
            if pending and not own:
                if pending == "namesake":
                    reason = f"{text!r} on its own is taken to be {use.note}"
                else:
                    reason = (
                        f"also a common word, and here {pending}; nothing in the article (its "
                        f"country, region or a nearby city) confirms {use.desc or use.place}"
                    )
            elif use.rivals and not own:
                rival = next(
                    (n for n, r in enumerate(use.rivals) if not present.isdisjoint(groups[r])),
                    -1,
                )
                if rival >= 0:
                    atoms = groups[use.rivals[rival]] & present
                    evidence = next(
                        (found.context_text[a] for a in sorted(atoms) if a in found.context_text),
                        "",
                    )
                    names = f" (it names {evidence!r})" if evidence else ""
                    reason = (
                        f"the article points to another place of that name, "
                        f"{use.rival_names[rival]}{names}, and names nothing near {use.desc}"
                    )
            if reason:
                if trace is not None:
                    self._aside(trace, use, rank, start, end, text, texts, reason)
                continue
            ident = (use.wl, use.kind, use.slot, use.place)
            old = best.get(ident)
            if old is None or (rank, start) < (old[0], old[1]):
                best[ident] = c
        per_wl: dict[int, list[_Candidate]] = {}
        has_any: set[int] = set()
        for (i, kind, _slot, _place), c in best.items():
            cands = per_wl.get(i)
            if cands is None:
                per_wl[i] = [c]
            else:
                cands.append(c)
            if kind <= PLACE:
                has_any.add(i)
        for i in self._always:
            per_wl.setdefault(i, [])
        out: dict[str, list[Match]] = {}
        wls = self._watchlists
        snippets: dict[tuple[int, int, int], str] = {}  # one per span: watchlists share hits
        for i in sorted(per_wl):
            if i in excluded or not active[i]:
                continue
            wl = wls[i]
            if wl.n_any and i not in has_any:
                continue
            cands = per_wl[i]
            if wl.n_require and wl.n_require > len(
                {c[4].slot for c in cands if c[4].kind == REQUIRE}
            ):
                continue
            if len(cands) > 1:
                cands.sort(key=_strength)  # stable: ties keep the order found
            out[wl.name] = _matches(cands, texts, snippets)
        return out


def _matches(
    cands: list[_Candidate],
    texts: tuple[str, str, str],
    snippets: dict[tuple[int, int, int], str],
) -> list[Match]:
    """The reported form of candidates: snippets are only ever built here, once per span of
    an article (``snippets``: the article's cache; a prefix keyword and a whole word of
    another watchlist often share one)."""
    out = []
    for rank, start, end, text, use, _ in cands:
        where = (rank, start, end)
        snip = snippets.get(where)
        if snip is None:
            snip = snippets[where] = make_snippet(texts[rank], start, end)
        out.append(
            Match(_KIND_NAMES[use.kind], use.term, text, snip, FIELDS[rank], start, use.place)
        )
    return out


def _strength(c: _Candidate) -> tuple[int, int, int]:
    """Sort key, strongest first: keywords and places before require terms, then field, offset."""
    return (_KIND_RANK[c[4].kind], c[0], c[1])


# --------------------------------------------------------------------------- building


class _Builder:
    """Collects keys and their uses; resolves places through the gazetteer (opened only when
    a watchlist names a place)."""

    def __init__(self) -> None:
        self.keys: list[_Key] = []
        self._ids: dict[str, int] = {}
        self._gaz: Gazetteer | None = None
        self._groups: dict[frozenset[int], int] = {}
        self._group_keys: list[frozenset[str]] = []  # per group: its words
        self.group_atoms: list[frozenset[int]] = []  # per group: its atoms
        self._atoms: dict[frozenset[str], int] = {}
        self._place_forms: set[str] = set()
        self._name_keys: dict[str, str | None] = {}
        self._terms_keys: dict[tuple[str, ...], frozenset[str]] = {}

    @property
    def gaz(self) -> Gazetteer:
        if self._gaz is None:
            from monitor.match.gazetteer import gazetteer

            self._gaz = gazetteer()
        return self._gaz

    def _key(self, key: str, prefix: bool) -> _Key:
        kid = self._ids.get(key)
        if kid is None:
            kid = len(self.keys)
            self._ids[key] = kid
            lead = 1 if key.startswith(" ") else 0
            trail = 1 if key.endswith(" ") else 0
            self.keys.append(_Key(key, len(key), lead, trail, prefix))
        return self.keys[kid]

    def add_term(self, kind: int, wl: int, slot: int, raw: str) -> None:
        term: Term = parse_term(raw)
        self._key(term.key, term.prefix).uses.append(
            _Use(kind=kind, wl=wl, slot=slot, term=term.text, accents=term.accents)
        )

    def _name_key(self, name: str) -> str | None:
        key = self._name_keys.get(name, "")
        if key == "":
            words = normalize(name).strip()
            key = automaton_key(words, False) if words else None
            self._name_keys[name] = key
        return key

    def _add_name(self, name: str, use: _Use) -> None:
        key = self._name_key(name)
        if key is None:
            return
        k = self._key(key, False)
        k.spatial = True
        k.uses.append(use)
        self._place_forms.add(key.strip())

    def _keys_of(self, names: tuple[str, ...]) -> frozenset[str]:
        """The context keys of a tuple of names (cached: a region's names recur per town)."""
        keys = self._terms_keys.get(names)
        if keys is None:
            keys = frozenset(
                k
                for n in names
                if (k := self._name_key(n)) is not None and k.strip() not in WORDLIKE
            )
            self._terms_keys[names] = keys
        return keys

    def _atom(self, keys: frozenset[str]) -> int:
        """A set of context words, each of which marks the atom present when it occurs.

        Atoms are shared: every town of a region uses its region's atom, so a word such as
        ``Germany`` carries one context use per atom, not one per town watched."""
        aid = self._atoms.get(keys)
        if aid is None:
            aid = len(self._atoms)
            self._atoms[keys] = aid
            for key in keys:
                self._key(key, False).uses.append(_Use(kind=CONTEXT, slot=aid))
        return aid

    def _group(
        self, names: Sequence[str], itself: Sequence[str] = (), also: Sequence[str] = ()
    ) -> int:
        """A context group: any of these words in the article confirms a place.

        ``names`` (a region's terms: one atom) and ``also`` (nearby towns: one atom each).
        ``itself``: the place's own spellings, which never confirm it (a region named like
        its capital, ``Valencia``)."""
        skip = {self._name_key(n) for n in itself}
        atoms: set[int] = set()
        words: set[str] = set()
        keys = self._keys_of(tuple(names))
        if not skip.isdisjoint(keys):
            keys = keys - skip
        if keys:
            atoms.add(self._atom(keys))
            words |= keys
        for name in also:
            k = self._keys_of((name,))
            if k and skip.isdisjoint(k):
                atoms.add(self._atom(k))
                words |= k
        group = frozenset(atoms)
        gid = self._groups.get(group)
        if gid is None:
            gid = len(self._groups)
            self._groups[group] = gid
            self._group_keys.append(frozenset(words))
            self.group_atoms.append(group)
        return gid

    def add_place(self, wl: int, slot: int, spec: PlaceSpec) -> None:
        gaz = self.gaz
        country_code: str | None = None
        if spec.country:
            country = gaz.country(spec.country)
            if country is None:
                raise ValueError(
                    f"unknown country {spec.country!r} (use an ISO code such as PT or a country name)"
                )
            country_code = country.code
        as_country = gaz.country_by_name(spec.name)
        if as_country is not None and (country_code in (None, as_country.code)):
            self._add_country(wl, slot, spec, as_country.code)
            return
        found = gaz.find(spec.name, country_code)
        if not found:
            in_ = f" in {gaz.countries[country_code].name}" if country_code else ""
            raise ValueError(f"unknown place {spec.name!r}{in_}")
        center = gaz.place(found[0])
        if center.is_region:
            self._add_region(wl, slot, spec, center)
            return
        self._add_town(wl, slot, spec.name, center, chosen=country_code is not None)
        towns: list[int] = []
        if spec.within_km:
            towns += [i for i, _ in gaz.within(center.lat, center.lon, spec.within_km)]
        if spec.country_wide:
            towns += gaz.in_country(center.country)
        towns = [i for i in dict.fromkeys(towns) if i != center.id]
        gaz.prefetch_neighbours(towns)
        for i in towns:
            self._add_town(wl, slot, spec.name, gaz.place(i))

    def _add_country(self, wl: int, slot: int, spec: PlaceSpec, code: str) -> None:
        gaz = self.gaz
        label = gaz.countries[code].name
        use = _Use(kind=PLACE, wl=wl, slot=slot, term=spec.name, place=label)
        names = list(gaz.country_terms(code))
        for name in list(names):
            names.extend(cyrillic_forms(name))
        for name in dict.fromkeys(names):
            self._add_name(name, use)
        towns: list[int] = []
        if spec.country_wide:
            towns += gaz.in_country(code)
        if spec.within_km:
            c = gaz.countries[code]
            towns += [i for i, _ in gaz.within(c.lat, c.lon, spec.within_km)]
        towns = list(dict.fromkeys(towns))
        gaz.prefetch_neighbours(towns)
        for i in towns:
            self._add_town(wl, slot, spec.name, gaz.place(i))

    def _add_region(self, wl: int, slot: int, spec: PlaceSpec, region: Place) -> None:
        """A first-level region: its names; with ``within_km``, also every town in it or
        within that distance of one of its towns; with ``country_wide``, every town in it.
        Namesakes elsewhere are set aside on their own region's names, whether or not the
        region was picked with ``country:``."""
        gaz = self.gaz
        biggest = [gaz.place(i) for i in gaz.in_region(region.id)[:25]]
        own = self._group(
            [
                *(gaz.country_terms(region.country) if region.country != "US" else ()),
                *(p.name for p in biggest if p.population >= gaz.PROMINENT),
            ],
            gaz.names(region.id),
        )
        desc = gaz.describe(region)
        primary_key = normalize(region.name).strip()
        # namesakes elsewhere: regions and towns of one of its names in other countries or
        # regions (Andalusia, Alabama; Ontario, California), pointed to by their own region
        own_terms = set(gaz.country_terms(region.country)) | set(gaz.names(region.id))
        rivals_for: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {}
        for name in gaz.names(region.id):
            key = normalize(name).strip()
            if key in rivals_for:
                continue
            groups: dict[int, str] = {}
            for j, prim in gaz.key_places(key)[:50]:
                other = gaz.place(j)
                if j == region.id or prim == 0 or other.region == region.id:
                    continue
                if other.is_region and other.country == region.country:
                    continue
                terms = [t for t in gaz.region_terms(other) if t not in own_terms]
                if terms:
                    gid = self._group(terms, gaz.names(region.id))
                    if self._group_keys[gid]:
                        groups.setdefault(gid, gaz.describe(other))
            rivals_for[key] = (tuple(groups), tuple(groups.values()))
        self._add_spellings(
            wl,
            slot,
            spec.name,
            region,
            gaz.names(region.id),
            primary_key,
            own=own,
            dominant=True,
            rivals=(),
            rival_names=(),
            desc=desc,
            note="",
            label=gaz.label(region.id),
            rivals_for=rivals_for,
        )
        towns: list[int] = []
        if spec.within_km:
            towns = gaz.near_region(region.id, spec.within_km)
        elif spec.country_wide:
            towns = gaz.in_region(region.id)
        gaz.prefetch_neighbours(towns)
        for i in towns:
            self._add_town(wl, slot, spec.name, gaz.place(i))

    def _add_town(self, wl: int, slot: int, term: str, town: Place, chosen: bool = False) -> None:
        """Watch ``town`` under ``term``; ``chosen``: the place the user picked with
        ``country:`` (the reading the user means, even if a bigger namesake exists)."""
        gaz = self.gaz
        neighbours = self._neighbour_names(town)
        own = self._group(gaz.region_terms(town), gaz.names(town.id), neighbours)
        primary_key = normalize(town.name).strip()
        bearers = gaz.bearers(primary_key)
        dominant = not bearers or bearers[0] == town.id
        desc = gaz.describe(town)
        note = ""
        if not dominant:
            biggest = gaz.place(bearers[0])
            ratio = biggest.population / town.population if town.population else float("inf")
            if chosen and ratio <= NAMESAKE_RATIO:
                dominant = True  # the user's reading of the name: treated as the default
            else:
                note = (
                    f"{gaz.describe(biggest)} ({ratio:.0f}x the population of {desc}); the "
                    f"article names nothing near {desc} (its region or a nearby city)"
                )
        # namesakes of any of its spellings (Odesa is also spelled Odessa, like the town in
        # Texas), each pointed to by its region; the main name's namesakes are its bearers
        rivals_for: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {}
        if dominant:
            for name in gaz.names(town.id):
                key = normalize(name).strip()
                if key in rivals_for:
                    continue
                others = bearers if key == primary_key else gaz.bearers(key)
                if any(b != town.id for b in others):
                    rivals_for[key] = self._rivals(town, others, own, chosen)
        self._add_spellings(
            wl,
            slot,
            term,
            town,
            gaz.names(town.id),
            primary_key,
            own=own,
            dominant=dominant,
            rivals=(),
            rival_names=(),
            desc=desc,
            note=note,
            label=town.name,
            rivals_for=rivals_for,
        )

    def _add_spellings(
        self,
        wl: int,
        slot: int,
        term: str,
        place: Place,
        spellings: Sequence[str],
        primary_key: str,
        *,
        own: int,
        dominant: bool,
        rivals: tuple[int, ...],
        rival_names: tuple[str, ...],
        desc: str,
        note: str,
        label: str,
        rivals_for: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] | None = None,
    ) -> None:
        """Every spelling (and Cyrillic case form) of a place as a key; namesake rivals go on
        its main name (``rivals_for``: per spelling, for regions known by many names)."""
        names = list(spellings)
        if place.is_region or place.population >= 15_000 or place.country in CYRILLIC_COUNTRIES:
            # case forms for places Russian or Ukrainian text names often enough (a village
            # in Bavaria keeps its Cyrillic spelling, not eight case forms of it)
            for name in list(names):
                names.extend(cyrillic_forms(name))
        for name in dict.fromkeys(names):
            key = normalize(name).strip()
            primary = key == primary_key
            these, these_names = (
                rivals_for.get(key, ((), ()))
                if rivals_for is not None
                else ((rivals, rival_names) if primary else ((), ()))
            )
            self._add_name(
                name,
                _Use(
                    kind=PLACE,
                    wl=wl,
                    slot=slot,
                    term=term,
                    place=label,
                    common=key in COMMON_WORDS,
                    noun=key in GERMAN_WORDS,
                    needs_context=not dominant and primary,
                    context=own,
                    rivals=these,
                    desc=desc,
                    rival_names=these_names,
                    note=note if primary else "",
                ),
            )

    def _neighbour_names(self, place: Place) -> list[str]:
        """Nearby cities that can confirm ``place`` (common words would confirm anything)."""
        gaz = self.gaz
        out = []
        for j in gaz.neighbours(place):
            name = gaz.place(j).name
            if normalize(name).strip() not in WORDLIKE:
                out.append(name)
        return out

    def _rivals(
        self, town: Place, bearers: list[int], own: int, chosen: bool = False
    ) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """Context groups that point to another place of the same name, and which place each.

        Every namesake elsewhere is pointed to by its region (its first-level region's names,
        and its country's). A namesake bigger than ``town`` (only when ``town`` was picked
        with ``country:``), and any namesake when ``town`` was picked with ``country:``, is
        also pointed to by its nearby cities, except names that are also first names or
        towns of ``town``'s own country, and words that already confirm ``town``.
        """
        gaz = self.gaz
        own_region = set(gaz.region_terms(town))
        own_keys = self._group_keys[own]
        groups: dict[int, str] = {}
        for j in bearers[:50]:
            if j == town.id:
                continue
            other = gaz.place(j)
            terms = [t for t in gaz.region_terms(other) if t not in own_region]
            if not terms:
                continue
            if chosen or other.population > town.population:
                for name in self._neighbour_names(other):
                    key = normalize(name).strip()
                    if key in FIRST_NAMES or any(
                        gaz.place(b).country == town.country for b in gaz.bearers(key)
                    ):
                        continue
                    terms.append(name)
            terms = [t for t in terms if self._name_key(t) not in own_keys]
            if terms:
                gid = self._group(terms, gaz.names(town.id))
                if self._group_keys[gid]:
                    groups.setdefault(gid, gaz.describe(other))
        return tuple(groups), tuple(groups.values())

    def add_blockers(self) -> None:
        """Longer gazetteer names that contain a configured place name (``New York`` for York)."""
        if not self._place_forms or self._gaz is None:
            return
        for name in self._gaz.blockers(self._place_forms):
            k = self._key(automaton_key(name, False), False)
            k.spatial = True
            if not any(u.kind == BLOCK for u in k.uses):
                k.uses.append(_Use(kind=BLOCK))

    def automata(self) -> tuple[_Automaton | None, _Automaton | None]:
        """(automaton of space-led keys, automaton of unspaced-script keys); None when empty."""
        spaced: list[tuple[str, tuple[int, int, int | None]]] = []
        bare: list[tuple[str, tuple[int, int, int | None]]] = []
        for key, kid in self._ids.items():
            k = self.keys[kid]
            (spaced if k.lead else bare).append((key, (kid, k.lead, None if k.prefix else k.trail)))
        return (
            _Automaton([k for k, _ in spaced], [v for _, v in spaced]) if spaced else None,
            _Automaton([k for k, _ in bare], [v for _, v in bare]) if bare else None,
        )


class _Automaton:
    """Keys in one Aho-Corasick automaton (ahocorasick_rs); hits as whole-word spans.

    The Rust automaton does not pickle: a pickled matcher carries the keys and rebuilds it on
    load (about 10 ms for 12,000 keys).
    """

    __slots__ = ("_ac", "_keys", "_vals")

    def __init__(self, keys: list[str], vals: list[tuple[int, int, int | None]]) -> None:
        self._keys = keys
        self._vals = vals  # per key: (key id, leading boundary, trailing boundary | None for *)
        self._ac = ahocorasick_rs.AhoCorasick(keys, matchkind=ahocorasick_rs.MatchKind.Standard)

    def __getstate__(self) -> tuple[list[str], list[tuple[int, int, int | None]]]:
        return self._keys, self._vals

    def __setstate__(self, state: tuple[list[str], list[tuple[int, int, int | None]]]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def hits(self, norm: str, out: list[tuple[int, int, int]]) -> None:
        """Append (word start, word end, key id) of every hit, overlapping ones included."""
        vals = self._vals
        append = out.append
        for i, start, end in self._ac.find_matches_as_indexes(norm, overlapping=True):
            kid, lead, trail = vals[i]
            append((start + lead, norm.find(" ", end) if trail is None else end - trail, kid))
