"""Regenerates ``monitor/match/data/common_words.tsv``: gazetteer spellings that are words.

    apt-get install wamerican wspanish wfrench wngerman wukrainian hunspell-ru
    pip install wordfreq
    python tools/make_wordlists.py

A gazetteer spelling (one word, normalised) is a common word of a language when that
language's dictionary lists it as an ordinary word and it is frequent in that language
(wordfreq Zipf >= 3.3, about twice per million words: rare words such as "ado" do not make a
town's name ambiguous in practice).

- English, Spanish, French, Russian, Ukrainian capitalise proper nouns only, so the
  dictionary's lower-case entries are the ordinary words (``bath``, ``paz``, ``мир``).
- German capitalises every noun: a capitalised entry is a noun when the dictionary also has
  its plural or genitive forms (``Wald``: ``Wälder``, ``Waldes``), which proper names lack;
  those are tagged ``de-noun`` (capitalisation is no evidence of a place in German text).

Eponyms that mostly mean the place (cologne, oxford...) are left out by hand (EPONYMS), and a
few words the dictionaries lack are added (EXTRA). Country names and the names of regions of
half a million people or more are never common words (unless English ones: "central"), nor
are the names of towns that big, unless English or German words ("reading", "essen"). Written once per gazetteer data change;
the output is committed (it is small text).
"""

from __future__ import annotations

import sqlite3
import sys
from collections import defaultdict
from pathlib import Path

from wordfreq import zipf_frequency

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.match.gazetteer import gazetteer_path  # noqa: E402
from monitor.match.normalize import normalize_many  # noqa: E402

OUT = ROOT / "monitor" / "match" / "data" / "common_words.tsv"
THRESHOLD = 3.3
DICTS = {
    "en": "/usr/share/dict/american-english",
    "es": "/usr/share/dict/spanish",
    "fr": "/usr/share/dict/french",
    "de": "/usr/share/dict/ngerman",
    "uk": "/usr/share/dict/ukrainian",
    "ru": "/usr/share/hunspell/ru_RU.dic",
}
# lower-case dictionary words whose everyday use is mostly the place (or its product)
EPONYMS = {
    "en": "cologne oxford bologna champagne cheddar jersey java madeira sherry tangerine "
    "bikini hamburg frankfurt canterbury panama bordeaux burgundy cognac china turkey "
    "jordan chile peru guinea",
    "de": "burgenland saarland ulm kiel athen roma adria milan amazon",
}
# words the dictionaries lack or list only capitalised, but that are ordinary words
EXTRA = {"en": "hope bath reading split mobile nice deal sale"}


def read_dict(lang: str) -> list[str]:
    path = Path(DICTS[lang])
    words = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        w = line.split("/")[0].strip()
        if w and " " not in w and not w.endswith("'s"):
            words.append(w)
    return words


def german_nouns(words: list[str]) -> set[str]:
    have = set(words)
    out = set()
    for w in words:
        if not w[:1].isupper() or len(w) < 3:
            continue
        forms = (w + "e", w + "en", w + "n", w + "es")  # not -er: Berliner is a demonym
        if any(f in have for f in forms):
            out.add(w)
    return out


def main() -> int:
    db = sqlite3.connect(f"file:{gazetteer_path()}?mode=ro", uri=True)
    gaz_keys = {k for (k,) in db.execute("SELECT DISTINCT key FROM spelling") if " " not in k}
    # names of countries, and of regions of half a million people or more, are never common
    # words ("venezuela", "california" are lower-case entries of the Spanish dictionary),
    # unless they are English words too ("central", "north")
    names: list[str] = []
    for (terms,) in db.execute("SELECT terms FROM country"):
        names.extend(terms.split("\x1f"))
    country_keys = set(normalize_many(names))
    rows = db.execute("SELECT name, label FROM place WHERE kind=1 AND population >= 500000")
    region_keys = set(normalize_many([n for row in rows for n in row]))
    # big towns: their main name, and any spelling of a national capital (the Ukrainian list
    # has "київ" in lower case)
    city_keys: set[str] = set()
    for key, prim, capital in db.execute(
        "SELECT s.key, s.prim, p.capital FROM spelling s JOIN place p ON p.id = s.id "
        "WHERE p.kind = 0 AND p.population >= 500000"
    ):
        if prim == 1 or capital:
            city_keys.add(key)
    tags: dict[str, set[str]] = defaultdict(set)
    for lang in DICTS:
        words = read_dict(lang)
        nouns = german_nouns(words) if lang == "de" else set()
        cands = [w for w in words if w[:1].islower() or w in nouns]
        keys = normalize_many(cands)
        skip = set(EPONYMS.get(lang, "").split())
        for w, k in zip(cands, keys, strict=True):
            if k not in gaz_keys or k in skip or " " in k:
                continue
            if zipf_frequency(w, lang) < THRESHOLD:
                continue
            tags[k].add("de-noun" if w in nouns else lang)
        for w in EXTRA.get(lang, "").split():
            tags[w].add(lang)
    dropped = []
    for k in list(tags):
        if k in country_keys or (k in region_keys and "en" not in tags[k]):
            del tags[k]
        elif k in city_keys and not tags[k] & {"en", "de", "de-noun"}:
            dropped.append(k)  # dictionary noise: "київ", "sevilla" as lower-case entries
            del tags[k]
    print("big cities left out:", " ".join(sorted(dropped)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}\t{','.join(sorted(v))}" for k, v in sorted(tags.items())]
    OUT.write_text(
        "# gazetteer spellings that are common words (tools/make_wordlists.py)\n"
        + "\n".join(lines)
        + "\n",
        encoding="utf-8",
    )
    print(f"{len(lines)} words -> {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
