"""The matcher: every term of every watchlist in one Aho-Corasick automaton.

Build once per config (:meth:`Matcher.build`), then :meth:`Matcher.match` each article. Each
field is normalised once (:mod:`monitor.match.normalize`), scanned once, and every hit is
checked against the uses of its key (which watchlist, which kind of term, place rules).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ahocorasick

from monitor.match.keywords import Term, automaton_key, parse_term
from monitor.match.normalize import (
    UNSPACED_RANGES,
    FieldText,
    accent_key,
    accents_agree,
    normalize,
)
from monitor.match.places import (
    cyrillic_forms,
    headline_cased,
    is_all_caps,
    is_capitalised,
    person_name,
    sentence_initial,
)
from monitor.match.snippet import make_snippet
from monitor.match.wordlists import COMMON_WORDS

if TYPE_CHECKING:
    from monitor.match.gazetteer import Gazetteer
    from monitor.settings import PlaceSpec, Watchlist

log = logging.getLogger(__name__)

FIELDS = ("title", "summary", "body")
KEYWORD, PLACE, REQUIRE, EXCLUDE, CONTEXT, BLOCK = range(6)
_KIND_NAMES = {KEYWORD: "keyword", PLACE: "place", REQUIRE: "require"}
_KIND_RANK = {KEYWORD: 0, PLACE: 0, REQUIRE: 1}
_UNSPACED_RE = re.compile(
    "[" + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in UNSPACED_RANGES) + "]"
)


@dataclass(frozen=True, slots=True)
class Match:
    """One reason a watchlist matched an article."""

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
    needs_context: bool = False  # a smaller namesake of a bigger place: its context needed
    context: int = -1  # context group that confirms this place
    rivals: tuple[int, ...] = ()  # context groups of namesakes elsewhere


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

    def wants(self, doc: Document) -> bool:
        if not self.feeds and not self.tags:
            return True
        if doc.feed_name is not None and doc.feed_name in self.feeds:
            return True
        return any(t in self.tags for t in doc.feed_tags)


@dataclass(slots=True)
class _Candidate:
    use: _Use
    rank: int  # field index
    start: int
    end: int
    text: str
    pending: bool  # needs its own context group to be present


class Matcher:
    """Compiled watchlists. Pure and synchronous; picklable (the automaton pickles)."""

    def __init__(
        self,
        watchlists: list[_Watchlist],
        keys: list[_Key],
        automata: tuple[Any, Any],
    ) -> None:
        self._watchlists = watchlists
        self._keys = keys
        # watchlists with no keywords, places or require: every article of their feeds
        self._always = [i for i, w in enumerate(watchlists) if not (w.n_any or w.n_require)]
        # Keys that start with a word-boundary space, and keys that start with a character of a
        # script written without spaces (CJK, Thai). Two automata because pyahocorasick looks
        # up a node's children linearly: thousands of CJK first characters at the root would
        # slow every character of every article about threefold.
        self._automaton, self._unspaced = automata

    # ------------------------------------------------------------------ build

    @classmethod
    def build(cls, watchlists: Sequence[Watchlist]) -> Matcher:
        """Compile every watchlist; ValueError (one readable line) for an unusable term or place."""
        t0 = time.perf_counter()
        builder = _Builder()
        compiled = []
        for i, wl in enumerate(watchlists):
            where = f"watchlist {wl.name!r}"
            slot = 0
            for j, raw in enumerate(wl.keywords):
                builder.add_term(KEYWORD, i, slot, raw, f"{where}: keywords[{j}]")
                slot += 1
            for j, spec in enumerate(wl.places):
                builder.add_place(i, slot, spec, f"{where}: places[{j}]")
                slot += 1
            for j, raw in enumerate(wl.require):
                builder.add_term(REQUIRE, i, j, raw, f"{where}: require[{j}]")
            for j, raw in enumerate(wl.exclude):
                builder.add_term(EXCLUDE, i, j, raw, f"{where}: exclude[{j}]")
            compiled.append(
                _Watchlist(
                    name=wl.name,
                    feeds=frozenset(f for f in wl.feeds if not f.startswith("tag:")),
                    tags=frozenset(f[4:] for f in wl.feeds if f.startswith("tag:")),
                    n_any=slot,
                    n_require=len(wl.require),
                )
            )
        builder.add_blockers()
        matcher = cls(compiled, builder.keys, builder.automata())
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
        ft = FieldText(text)
        out = []
        for s, e, kid in self._hits(ft):
            os_, oe = ft.span(s, e)
            out.append((os_, oe, self._keys[kid].key))
        return out

    def _hits(self, ft: FieldText) -> list[tuple[int, int, int]]:
        """(word start, word end, key id) in normalised offsets, all overlapping hits."""
        norm = ft.norm
        keys = self._keys
        out: list[tuple[int, int, int]] = []
        if self._automaton is not None:
            for end, kid in self._automaton.iter(norm):
                k = keys[kid]
                s = end - k.length + 1 + k.lead
                e = end + 1 - k.trail
                if k.prefix:
                    e = norm.find(" ", end + 1)
                out.append((s, e, kid))
        if self._unspaced is not None and _UNSPACED_RE.search(norm):
            for end, kid in self._unspaced.iter(norm):
                k = keys[kid]
                s = end - k.length + 1
                e = end + 1 - k.trail
                if k.prefix:
                    e = norm.find(" ", end + 1)
                out.append((s, e, kid))
        return out

    def match(self, doc: Document) -> dict[str, list[Match]]:
        """Watchlist name -> its matches (strongest first), only for watchlists that match."""
        wls = self._watchlists
        active = [w.wants(doc) for w in wls]
        if not any(active):
            return {}
        texts = (doc.title or "", doc.summary or "", doc.body or "")
        candidates: list[_Candidate] = []
        excluded: set[int] = set()
        present: set[int] = set()
        title_headline: bool | None = None
        for rank, text in enumerate(texts):
            if not text:
                continue
            ft = FieldText(text)
            hits = self._hits(ft)
            if not hits:
                continue
            contained = self._contained(hits)
            for n, (s, e, kid) in enumerate(hits):
                found: str | None = None
                os_ = oe = 0
                for use in self._keys[kid].uses:
                    kind = use.kind
                    if kind == CONTEXT:
                        present.add(use.slot)
                        continue
                    if kind == BLOCK or not active[use.wl] or use.wl in excluded:
                        continue
                    if kind == PLACE and n in contained:
                        continue
                    if found is None:
                        os_, oe = ft.span(s, e)
                        found = text[os_:oe]
                    if use.accents is not None and not accents_agree(
                        use.accents, accent_key(found), kind != PLACE and use.term.endswith("*")
                    ):
                        continue
                    if kind == EXCLUDE:
                        excluded.add(use.wl)
                        continue
                    pending = False
                    if kind == PLACE:
                        if not is_capitalised(found) or person_name(text, os_, oe):
                            continue
                        if use.common:
                            if title_headline is None:
                                title_headline = bool(texts[0]) and headline_cased(texts[0])
                            if (
                                is_all_caps(found)
                                or sentence_initial(text, os_)
                                or (rank == 0 and title_headline)
                            ):
                                pending = True
                        if use.needs_context:
                            pending = True
                    candidates.append(_Candidate(use, rank, os_, oe, found, pending))
        return self._decide(candidates, excluded, present, texts, active)

    def _contained(self, hits: list[tuple[int, int, int]]) -> set[int]:
        """Indexes of place hits inside a longer place/blocker hit (``York`` in ``New York``)."""
        keys = self._keys
        spans = [(s, -e, n) for n, (s, e, kid) in enumerate(hits) if keys[kid].spatial]
        if len(spans) < 2:
            return set()
        spans.sort()
        out: set[int] = set()
        max_end = -1
        for _s, neg_e, n in spans:
            if -neg_e <= max_end:
                out.add(n)
            else:
                max_end = -neg_e
        return out

    def _decide(
        self,
        candidates: list[_Candidate],
        excluded: set[int],
        present: set[int],
        texts: tuple[str, str, str],
        active: list[bool],
    ) -> dict[str, list[Match]]:
        per_wl: dict[int, dict[tuple[int, int, str | None], _Candidate]] = {}
        for c in candidates:
            use = c.use
            if use.wl in excluded:
                continue
            if use.kind == PLACE:
                own = use.context in present
                if c.pending and not own:
                    continue
                if use.rivals and not own and any(r in present for r in use.rivals):
                    continue
            best = per_wl.setdefault(use.wl, {})
            ident = (use.kind, use.slot, use.place)
            old = best.get(ident)
            if old is None or (c.rank, c.start) < (old.rank, old.start):
                best[ident] = c
        out: dict[str, list[Match]] = {}
        for i in sorted({*per_wl, *self._always}):
            wl = self._watchlists[i]
            if i in excluded or not active[i]:
                continue
            found = per_wl.get(i, {})
            if wl.n_any and not any(k[0] <= PLACE for k in found):
                continue
            if wl.n_require and len({k[1] for k in found if k[0] == REQUIRE}) < wl.n_require:
                continue
            ordered = sorted(
                found.values(), key=lambda c: (_KIND_RANK[c.use.kind], c.rank, c.start)
            )
            out[wl.name] = [
                Match(
                    kind=_KIND_NAMES[c.use.kind],
                    term=c.use.term,
                    text=c.text,
                    snippet=make_snippet(texts[c.rank], c.start, c.end),
                    field=FIELDS[c.rank],
                    start=c.start,
                    place=c.use.place,
                )
                for c in ordered
            ]
        return out


# --------------------------------------------------------------------------- building


class _Builder:
    """Collects keys and their uses; resolves places through the gazetteer."""

    def __init__(self) -> None:
        self.keys: list[_Key] = []
        self._ids: dict[str, int] = {}
        self._gaz: Gazetteer | None = None
        self._groups: dict[frozenset[str], int] = {}
        self._place_forms: set[str] = set()

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

    def add_term(self, kind: int, wl: int, slot: int, raw: str, where: str) -> None:
        try:
            term: Term = parse_term(raw)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        self._key(term.key, term.prefix).uses.append(
            _Use(kind=kind, wl=wl, slot=slot, term=term.text, accents=term.accents)
        )

    def _name_key(self, name: str) -> str | None:
        words = normalize(name).strip()
        return automaton_key(words, False) if words else None

    def _add_name(self, name: str, use: _Use) -> None:
        key = self._name_key(name)
        if key is None:
            return
        k = self._key(key, False)
        k.spatial = True
        k.uses.append(use)
        self._place_forms.add(key.strip())

    def _group(self, names: Sequence[str]) -> int:
        """A context group: any of these words in the article confirms a place."""
        keys = frozenset(k for n in names if (k := self._name_key(n)) is not None)
        gid = self._groups.get(keys)
        if gid is None:
            gid = len(self._groups)
            self._groups[keys] = gid
            for key in keys:
                self._key(key, False).uses.append(_Use(kind=CONTEXT, slot=gid))
        return gid

    def add_place(self, wl: int, slot: int, spec: PlaceSpec, where: str) -> None:
        gaz = self.gaz
        country_code: str | None = None
        if spec.country:
            country = gaz.country(spec.country)
            if country is None:
                raise ValueError(
                    f"{where}: unknown country {spec.country!r} (use an ISO code such as PT or a country name)"
                )
            country_code = country.code
        as_country = gaz.country_by_name(spec.name)
        if as_country is not None and (country_code in (None, as_country.code)):
            self._add_country(wl, slot, spec, as_country.code)
            return
        found = gaz.find_cities(spec.name, country_code)
        if not found:
            in_ = f" in {gaz.countries[country_code].name}" if country_code else ""
            raise ValueError(f"{where}: unknown place {spec.name!r}{in_} (not in the gazetteer)")
        center = found[0]
        self._add_city(wl, slot, spec.name, center)
        city = gaz.cities[center]
        if spec.within_km:
            for i, _ in gaz.within(city.lat, city.lon, spec.within_km):
                if i != center:
                    self._add_city(wl, slot, spec.name, i)
        if spec.country_wide:
            for i in gaz.in_country(city.country):
                if i != center:
                    self._add_city(wl, slot, spec.name, i)

    def _add_country(self, wl: int, slot: int, spec: PlaceSpec, code: str) -> None:
        gaz = self.gaz
        label = gaz.countries[code].name
        use = _Use(kind=PLACE, wl=wl, slot=slot, term=spec.name, place=label)
        for name in gaz.country_terms(code):
            self._add_name(name, use)
        if spec.country_wide:
            for i in gaz.in_country(code):
                self._add_city(wl, slot, spec.name, i)
        if spec.within_km:
            c = gaz.countries[code]
            for i, _ in gaz.within(c.lat, c.lon, spec.within_km):
                self._add_city(wl, slot, spec.name, i)

    def _add_city(self, wl: int, slot: int, term: str, i: int) -> None:
        gaz = self.gaz
        city = gaz.cities[i]
        neighbours = [
            gaz.cities[j].name
            for j in gaz.neighbours(city)
            if normalize(gaz.cities[j].name).strip() not in COMMON_WORDS
        ]
        own = self._group([*gaz.region_terms(city), *neighbours])
        primary_key = normalize(city.name).strip()
        bearers = gaz.bearers(primary_key)
        dominant = not bearers or bearers[0] == i
        rivals: tuple[int, ...] = ()
        if dominant and len(bearers) > 1:
            own_region = set(gaz.region_terms(city))
            groups = []
            for j in bearers[1:]:
                terms = gaz.region_terms(gaz.cities[j])
                if terms and not own_region.intersection(terms):
                    groups.append(self._group(terms))
            rivals = tuple(dict.fromkeys(groups))
        names = list(gaz.names(i))
        for name in list(names):
            names.extend(cyrillic_forms(name))
        for name in dict.fromkeys(names):
            key = normalize(name).strip()
            self._add_name(
                name,
                _Use(
                    kind=PLACE,
                    wl=wl,
                    slot=slot,
                    term=term,
                    place=city.name,
                    common=key in COMMON_WORDS,
                    needs_context=not dominant and key == primary_key,
                    context=own,
                    rivals=rivals if key == primary_key else (),
                ),
            )

    def add_blockers(self) -> None:
        """Longer gazetteer names that contain a configured place name (``New York`` for York)."""
        if not self._place_forms or self._gaz is None:
            return
        forms = self._place_forms
        longest = max(f.count(" ") for f in forms) + 1
        gaz = self._gaz
        candidates = list(gaz.primary_index())
        candidates += list(gaz.country_keys())
        candidates += [normalize(n).strip() for n in gaz.us_states.values()]
        for i, city in enumerate(gaz.cities):  # biggest first: their other names too
            if city.population < 1_000_000:
                break
            candidates += [normalize(n).strip() for n in gaz.names(i) if " " in n.strip()]
        for name in candidates:
            words = name.split(" ")
            if len(words) < 2 or name in forms:
                continue
            hit = False
            for size in range(1, min(longest, len(words) - 1) + 1):
                for at in range(len(words) - size + 1):
                    if " ".join(words[at : at + size]) in forms:
                        hit = True
                        break
                if hit:
                    break
            if hit:
                k = self._key(automaton_key(name, False), False)
                k.spatial = True
                if not any(u.kind == BLOCK for u in k.uses):
                    k.uses.append(_Use(kind=BLOCK))

    def automata(self) -> tuple[Any, Any]:
        """(automaton of space-led keys, automaton of unspaced-script keys); None when empty."""
        spaced = ahocorasick.Automaton()
        bare = ahocorasick.Automaton()
        for key, kid in self._ids.items():
            (spaced if key.startswith(" ") else bare).add_word(key, kid)
        out = []
        for a in (spaced, bare):
            if len(a):
                a.make_automaton()
                out.append(a)
            else:
                out.append(None)
        return out[0], out[1]
