"""The gazetteer: every GeoNames town of over 1,000 people, every first-level region, countries.

Kept on disk (:mod:`monitor.match.gazdata` builds one SQLite file per machine and data
version, in the cache directory) and read on demand: opening it reads ~250 countries and a
few numpy arrays (coordinates, populations, regions: ~6 MB), never the 170,000 places'
names, so a process that watches a handful of places holds only those. :func:`gazetteer`
opens it once per process, and only when a watchlist names places.
"""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from monitor.match.cache import cached_file
from monitor.match.gazdata import REGION, TOWN, data_version
from monitor.match.normalize import normalize

__all__ = ["REGION", "TOWN", "Country", "Gazetteer", "Place", "gazetteer", "haversine_km"]


@dataclass(frozen=True, slots=True)
class Place:
    """A town or a first-level region."""

    id: int
    kind: int  # TOWN | REGION
    name: str
    country: str  # ISO 3166 alpha-2
    region: int  # the place id of its first-level region (a region: itself), -1 unknown
    population: int  # a region: the sum of its towns'
    lat: float
    lon: float
    capital: bool

    @property
    def is_region(self) -> bool:
        return self.kind == REGION


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    name: str
    iso3: str
    population: int
    lat: float
    lon: float


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def _unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere, one row each."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack((np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)))


def _key(text: str) -> str:
    return normalize(text).strip()


def _build(path: Path) -> None:
    """In a child process: the build parses ~60 MB of JSON, which the caller never holds."""
    subprocess.run(
        [sys.executable, "-m", "monitor.match.gazdata", str(path)],
        check=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )


def gazetteer_path() -> Path:
    return cached_file(f"gazetteer-{data_version()}.sqlite", _build, "gazetteer (about 15 s)")


class Gazetteer:
    """Towns, regions and countries with the look-ups matching needs. Thread-safe."""

    PROMINENT = 15_000  # towns this big can serve as "a nearby city" context

    def __init__(self, path: Path | None = None) -> None:
        path = path or gazetteer_path()
        self._db = sqlite3.connect(
            f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
        self._lock = threading.RLock()
        blobs = dict(self._db.execute("SELECT name, data FROM blob WHERE name != 'blockers'"))
        self.n_towns = int(blobs["n_towns"].decode())
        self.lat = np.frombuffer(blobs["lat"], dtype=np.float64)
        self.lon = np.frombuffer(blobs["lon"], dtype=np.float64)
        self.pop = np.frombuffer(blobs["pop"], dtype=np.int64)
        self.region_of = np.frombuffer(blobs["region"], dtype=np.int32)
        codes = blobs["country_codes"].decode().split("\x1f")
        self.country_of = np.frombuffer(blobs["country"], dtype=np.uint16)
        self._code_idx = {c: n for n, c in enumerate(codes)}
        prominent = np.flatnonzero(self.pop[: self.n_towns] >= self.PROMINENT)
        self._prominent = prominent
        self.countries: dict[str, Country] = {}
        self._country_terms: dict[str, tuple[str, ...]] = {}
        for code, name, iso3, population, terms, lat, lon in self._db.execute(
            "SELECT code, name, iso3, population, terms, lat, lon FROM country"
        ):
            self.countries[code] = Country(code, name, iso3, population, lat, lon)
            self._country_terms[code] = tuple(terms.split("\x1f"))
        self._places: dict[int, Place] = {}
        self._names: dict[int, tuple[str, ...]] = {}
        self._labels: dict[int, str] = {}
        self._neighbours: dict[int, list[int]] = {}
        self._region_terms: dict[int, tuple[str, ...]] = {}

    # ------------------------------------------------------------------ places

    def place(self, i: int) -> Place:
        p = self._places.get(i)
        if p is None:
            with self._lock:
                row = self._db.execute(
                    "SELECT id, kind, name, country, region, population, lat, lon, capital "
                    "FROM place WHERE id=?",
                    (i,),
                ).fetchone()
            p = Place(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]))
            self._places[i] = p
        return p

    def names(self, i: int) -> tuple[str, ...]:
        """The spellings of place ``i`` worth matching in text (its main name first).

        Kept when they look like a proper noun in their script: not codes (``MUC``), no
        digits, Latin ones capitalised, at least 3 letters (2 in CJK), and not the main name
        of a bigger town or the name of another country (Munich's Italian name ``Monaco``).
        """
        cached = self._names.get(i)
        if cached is None:
            with self._lock:
                (text,) = self._db.execute(
                    "SELECT spellings FROM place WHERE id=?", (i,)
                ).fetchone()
            cached = tuple(text.split("\x1f"))
            self._names[i] = cached
        return cached

    def key_places(self, key: str) -> list[tuple[int, int]]:
        """(place id, 1 main town name | 0 other town spelling | 2 region spelling) for a key."""
        with self._lock:
            return list(
                self._db.execute("SELECT id, prim FROM spelling WHERE key=? ORDER BY id", (key,))
            )

    def bearers(self, key: str) -> list[int]:
        """Towns whose main name normalises to ``key``, biggest first."""
        return [i for i, prim in self.key_places(key) if prim == 1]

    def find(self, name: str, country: str | None = None) -> list[int]:
        """Places called ``name``, the one a reader means first (see docs/matching.md).

        Towns by their main name and regions by any of their names compete. A town in the
        region that bears its name and has a tenth of its people is what the name means (New
        York, São Paulo, Kharkiv: the city). Otherwise the region wins over a town elsewhere
        unless that town is a national capital or has a tenth of its people (Bavaria, Ontario:
        the region; Washington: the capital). Then towns by their other names.
        """
        rows = self.key_places(_key(name))
        if country:
            rows = [(i, p) for i, p in rows if self.place(i).country == country]
        towns = [i for i, p in rows if p == 1]
        others = [i for i, p in rows if p == 0]
        regions = [i for i, p in rows if p == 2]
        if regions:
            r = self.place(regions[0])
            if towns:
                t = self.place(towns[0])
                if t.capital or t.population * 10 >= r.population:
                    return [*towns, *regions]
            for i in others:
                t = self.place(i)
                if t.region == r.id and t.population * 10 >= r.population:
                    return [i, *regions]
            return [*regions, *towns]
        if towns and others:
            # a far bigger town known by this name in another language wins over small
            # bearers of it as their main name (Cologne: Köln, not Cologne, Italy)
            big = max(others, key=lambda i: self.place(i).population)
            if self.place(big).population >= 10 * self.place(towns[0]).population:
                return [big, *towns]
        return towns or others

    # ------------------------------------------------------------------ geometry

    def within(
        self, lat: float, lon: float, km: float, ids: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Towns (of ``ids``, default all) within ``km`` of a point, nearest first."""
        ids = np.arange(self.n_towns) if ids is None else ids
        dlat = km / 110.0 + 0.1
        la = self.lat.take(ids)
        sel = np.abs(la - lat) <= dlat
        ids, la = ids[sel], la[sel]
        lo = self.lon.take(ids)
        p1 = math.radians(lat)
        dp = np.radians(la) - p1
        dl = np.radians(lo - lon)
        a = np.sin(dp / 2) ** 2 + math.cos(p1) * np.cos(np.radians(la)) * np.sin(dl / 2) ** 2
        d = 2 * 6371.0088 * np.arcsin(np.minimum(1.0, np.sqrt(a)))
        ok = d <= km
        ids, d = ids[ok], d[ok]
        order = np.lexsort((ids, d))
        return [(int(i), float(x)) for i, x in zip(ids[order], d[order], strict=True)]

    def near_region(self, rid: int, km: float) -> list[int]:
        """Towns in region ``rid`` or within ``km`` of one of its towns, biggest first."""
        n = self.n_towns
        inside = np.flatnonzero(self.region_of[:n] == rid)
        if not len(inside):
            return []
        out = set(inside.tolist())
        lat, lon = self.lat.take(inside), self.lon.take(inside)
        dlat = km / 110.0 + 0.1
        box = np.flatnonzero(
            (self.lat[:n] >= lat.min() - dlat)
            & (self.lat[:n] <= lat.max() + dlat)
            & (self.region_of[:n] != rid)
        )
        if len(box):
            # nearest town of the region by the largest dot product of unit vectors (BLAS),
            # then the great-circle distance from the chord
            inner = _unit(lat, lon)
            cos_max = math.cos(min(math.pi, km / 6371.0088))
            step = max(1, 2_000_000 // len(inner))  # ~16 MB of distances at a time
            for chunk in np.array_split(box, max(1, len(box) // step)):
                dots = _unit(self.lat.take(chunk), self.lon.take(chunk)) @ inner.T
                out.update(chunk[dots.max(axis=1) >= cos_max].tolist())
        return sorted(out)

    def neighbours(self, place: Place, km: float = 150.0, limit: int = 25) -> list[int]:
        """The biggest towns (15,000 people or more) within 150 km of a town: its
        disambiguating context."""
        if place.is_region or math.isnan(place.lat):
            return []
        cached = self._neighbours.get(place.id)
        if cached is None:
            self.prefetch_neighbours([place.id], km, limit)
            cached = self._neighbours[place.id]
        return cached

    def prefetch_neighbours(self, ids: list[int], km: float = 150.0, limit: int = 25) -> None:
        """:meth:`neighbours` of many towns at once (one matrix product per few thousand)."""
        todo = np.asarray([i for i in ids if i < self.n_towns and i not in self._neighbours])
        if not len(todo):
            return
        cos_max = math.cos(km / 6371.0088)
        dlat = km / 110.0 + 0.1
        for chunk in np.array_split(todo, max(1, len(todo) // 128)):
            lat = self.lat.take(chunk)
            cand = self._prominent
            plat = self.lat.take(cand)
            sel = (plat >= lat.min() - dlat) & (plat <= lat.max() + dlat)
            cand = cand[sel]
            near = (
                _unit(lat, self.lon.take(chunk)) @ _unit(self.lat.take(cand), self.lon.take(cand)).T
            ) >= cos_max
            for row, i in enumerate(chunk.tolist()):
                found = cand[near[row]]  # ids are in population order: biggest first
                self._neighbours[i] = [int(j) for j in found[found != i][:limit]]

    def in_country(self, code: str) -> list[int]:
        c = self._code_idx.get(code)
        if c is None:
            return []
        return np.flatnonzero(self.country_of[: self.n_towns] == c).tolist()

    def in_region(self, rid: int) -> list[int]:
        return np.flatnonzero(self.region_of[: self.n_towns] == rid).tolist()

    # ------------------------------------------------------------------ countries

    def country(self, text: str) -> Country | None:
        """A country by ISO code (PT, PRT), name, alias or translation, any case."""
        with self._lock:
            row = self._db.execute(
                "SELECT code FROM country_key WHERE key=?", (_key(text),)
            ).fetchone()
        return self.countries.get(row[0]) if row else None

    def country_by_name(self, text: str) -> Country | None:
        """A country by name or alias only (not by code: ``US`` in a place list is ambiguous)."""
        key = _key(text)
        if len(key) <= 3 and text.isupper() and key not in {"uk", "usa", "uae", "drc"}:
            return None
        return self.country(text)

    def country_terms(self, code: str) -> tuple[str, ...]:
        """Name, aliases, demonyms (singular and plural) and translations of a country."""
        return self._country_terms.get(code, ())

    # ------------------------------------------------------------------ descriptions

    def region_terms(self, place: Place) -> tuple[str, ...]:
        """Words that place a town: its region's names and its country's (in the US, only the
        state: "American" would confirm any US town). The same tuple for every town of a
        region."""
        rid = place.region if place.region >= 0 and place.region != place.id else -1
        key = rid if rid >= 0 else -1 - self._code_idx.get(place.country, 0)
        terms = self._region_terms.get(key)
        if terms is None:
            out: list[str] = []
            if rid >= 0:
                out.extend(self.names(rid))
            if place.country != "US" or not out:
                out.extend(self.country_terms(place.country))
            terms = self._region_terms[key] = tuple(out)
        return terms

    def region_name(self, place: Place) -> str | None:
        if place.region < 0 or place.region == place.id:
            return None
        return self.region_display(place.region)

    def region_display(self, rid: int) -> str:
        """A region as an English reader knows it (``Bavaria``, not ``Bayern``), when known."""
        return self.label(rid)

    def label(self, i: int) -> str:
        """A place's English name: a town's main name, a region's English name."""
        label = self._labels.get(i)
        if label is None:
            with self._lock:
                (label,) = self._db.execute("SELECT label FROM place WHERE id=?", (i,)).fetchone()
            self._labels[i] = label
        return label

    def describe(self, place: Place) -> str:
        """``Paris, Texas`` / ``Valencia, Spain``: a place as a reader would tell it apart."""
        country = self.countries.get(place.country)
        cname = country.name if country else place.country
        if place.is_region:
            return f"{self.label(place.id)}, {cname}"
        if place.country == "US":
            state = self.region_name(place)
            if state:
                return f"{place.name}, {state}"
        return f"{place.name}, {cname}"

    def blockers(self, forms: set[str]) -> list[str]:
        """Longer gazetteer names (normalised) that contain one of ``forms`` as whole words."""
        out = set()
        with self._lock:
            for form in forms:
                padded = f" {form} "
                for (name,) in self._db.execute(
                    "SELECT name FROM blocker WHERE word=?", (form.split(" ")[0],)
                ):
                    if name != form and padded in f" {name} ":
                        out.add(name)
        return sorted(out)


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The process-wide gazetteer (opened on first use)."""
    return Gazetteer()
