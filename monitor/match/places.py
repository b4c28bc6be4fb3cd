"""Is this occurrence of a place name really the place? Heuristics on the original text.

- Capitalised: a place is a proper noun; its first letter must be upper case (in scripts that
  have case). An all-caps form counts unless the name is a common word.
- Common words (Bath, Split, Mobile, Nice, Reading): only as a proper noun in running text,
  i.e. capitalised, not at the start of a sentence or line, not in a title where most words
  are capitalised (headline case) and not in all caps; unless the article also names the
  place's country/state or a nearby place (checked by the engine).
- Person names: a place right after a first name or an honorific (``Jack London``,
  ``Mr London``), or a place that is itself a first name followed by another capitalised
  word that is not a usual place follower (``Paris Hilton``, but ``Paris Police``), is a
  person, not the place.
- Cyrillic names are matched with their common case endings (``Москва`` -> ``Москве``).
"""

from __future__ import annotations

import re

from monitor.match.normalize import normalize
from monitor.match.wordlists import (
    AMBIGUOUS_NAMES,
    COMMON_WORDS,
    FIRST_NAMES,
    GERMAN_MARKERS,
    HONORIFICS,
    PLACE_FOLLOWERS,
)

_PREV_WORD = re.compile(r"([^\W\d_][\w'’.-]*)[ \t]+$")
_PREV_ANY = re.compile(r"([^\W\d_]+)[ \t]+$")
_NEXT_WORD = re.compile(r"^[ \t]+([^\W\d_][\w'’-]*)")
_TITLE_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_OPENERS = "\"'“‘«„(*[-–—•· \t"
_SENTENCE_END = ".!?:;…\n\r"


def is_common_word(text: str) -> bool:
    key = normalize(text).strip()
    return " " not in key and key in COMMON_WORDS


def is_capitalised(text: str) -> bool:
    """First letter upper case, or a script without case (CJK, Arabic, ...)."""
    first = text[:1]
    return bool(first) and (first.isupper() or not first.islower())


def is_all_caps(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) > 1 and all(c.isupper() for c in letters)


def sentence_initial(orig: str, start: int) -> bool:
    """Whether the word at ``start`` opens a sentence, line or the field."""
    i = start
    while i > 0 and orig[i - 1] in _OPENERS:
        i -= 1
    if i == 0:
        return True
    if orig[i - 1] in _SENTENCE_END:
        return True
    return "\n" in orig[i:start]


def cued(orig: str, start: int, cues: frozenset[str]) -> bool:
    """Whether the word right before ``start`` puts a place after it (``in``, ``near``, ``в``)."""
    m = _PREV_ANY.search(orig, max(0, start - 20), start)
    return m is not None and m.group(1).casefold() in cues


def is_german(norm: str) -> bool:
    """Whether normalised article text reads as German (its commonest words)."""
    words = norm.count(" ") or 1
    return sum(norm.count(w) for w in GERMAN_MARKERS) * 20 >= words


def headline_cased(title: str) -> bool:
    """Most longer words capitalised (``Flooding In Bath Leaves Hundreds Homeless``) or all caps."""
    words = [w for w in _TITLE_WORD.findall(title) if len(w) >= 4]
    if len(words) < 2:
        return False
    caps = sum(1 for w in words if w[0].isupper())
    return caps / len(words) >= 0.75


def _prev_capitalised(orig: str, start: int) -> re.Match[str] | None:
    """``_PREV_WORD.search`` over the 40 characters before ``start``, without trying every one,
    or None at once when that word has no capital (most words before a place name).

    A match is a word run followed by spaces/tabs up to ``start``; a plain space cannot be
    inside the run, so the search can begin after the last space before the run.
    """
    if not start or orig[start - 1] not in " \t":
        return None
    lo = max(0, start - 40)
    q = lo + len(orig[lo:start].rstrip(" \t"))
    k = orig.rfind(" ", lo, q)
    k = k + 1 if k >= 0 else lo
    if orig[k:q].islower():  # no upper-case letter at all: the word found would not qualify
        return None
    return _PREV_WORD.search(orig, k, start)


# A place name with one of these after it (capitalised) or before it names a street, which is
# somewhere else: ``Oxford Street`` in London, ``Carabobo Street`` in Manila, ``calle Carabobo``.
STREET_AFTER = frozenset("street st road rd avenue ave boulevard blvd lane drive".split())
_STREET_BEFORE = re.compile(
    r"(?:^|[\s(])(?:calle|avenida|av\.|rua|rue|via|viale|corso|ulica|улица|улице|вулиця|вулиці)[ \t]+$",
    re.IGNORECASE,
)


def street_name(orig: str, start: int, end: int) -> bool:
    """``Carabobo Street``, ``Lisbon Road``, ``calle Carabobo``: the found place names a street."""
    after = _NEXT_WORD.match(orig[end : end + 40])
    if after:
        nxt = after.group(1)  # ``St.``, ``Rd.``: the word, without its dot
        if nxt[0].isupper() and nxt.casefold() in STREET_AFTER:
            return True
    return bool(_STREET_BEFORE.search(orig[max(0, start - 20) : start]))


def person_name(orig: str, start: int, end: int, key: str | None = None) -> bool:
    """``Jack London``, ``Mr London``, ``Paris Hilton``: the found place is part of a name.

    ``key``: the found text already normalised (the matcher knows it), to skip doing it again.
    """
    before = _prev_capitalised(orig, start)
    if before and before.group(1)[0].isupper():
        prev = before.group(1).rstrip(".").casefold()
        if prev in HONORIFICS:
            return True
        if prev in FIRST_NAMES and (
            prev not in AMBIGUOUS_NAMES or not sentence_initial(orig, before.start(1))
        ):
            return True
    if key is None:
        key = normalize(orig[start:end]).strip()
    if key in FIRST_NAMES:
        after = _NEXT_WORD.match(orig[end : end + 40])
        if after:
            nxt = after.group(1)
            if (
                nxt[0].isupper()
                and not is_all_caps(nxt)
                and nxt.casefold() not in PLACE_FOLLOWERS
                and nxt.casefold() not in COMMON_WORDS
            ):
                return True
    return False


# --------------------------------------------------------------------------- Cyrillic

_CYR = re.compile(r"^[\u0400-\u04ff]+$")
_UA_ALTERNATION = re.compile(r"([іїІЇ])([^аеєиіїоуюяёыэьАЕЄИІЇОУЮЯЁЫЭ]+)$")


def cyrillic_forms(name: str) -> list[str]:
    """Inflected forms of a Cyrillic place name (last word only), besides the name itself.

    Russian and Ukrainian nouns take case endings: Москва -> Москвы, Москве, Москву, Москвой;
    Київ -> Києва, Києву, Києві, Києвом (Ukrainian і/ї in the last closed syllable becomes
    о/е/є in the other cases: Львів -> Львова, Харків -> Харкова). Names ending in о, е, и, ы,
    у, ю, э (Осло, Токио) do not decline and get no extra forms.
    """
    head, _, last = name.rpartition(" ")
    if not _CYR.match(last) or len(last) < 3:
        return []
    if head and last.lower() in _ADMIN_NOUNS and _CYR.match(head.rpartition(" ")[2]):
        return _admin_forms(head, last)
    prefix = f"{head} " if head else ""
    low = last[-1].lower()
    for ending, others in _ADJ_ENDINGS[2:6]:  # adjectival names: Хмельницький, Красный
        if last.lower().endswith(ending) and len(last) > 4:
            stem = last[: -len(ending)]
            return sorted({prefix + stem + e for e in others})
    forms: set[str] = set()
    if low == "а":
        stem = last[:-1]
        forms.update(stem + e for e in ("ы", "и", "е", "і", "у", "ой", "ою", "ою"))
    elif low == "я":
        stem = last[:-1]
        forms.update(stem + e for e in ("и", "і", "е", "ю", "ей", "ею", "єю"))
    elif low == "ь":
        stem = last[:-1]
        forms.update(stem + e for e in ("и", "і", "ью", "я", "ю", "е", "ем", "ем", "ю"))
    elif low == "й":
        stem = last[:-1]
        forms.update(stem + e for e in ("я", "ю", "е", "ем", "ї", "єм"))
    elif low in "оеиыуюэіїє":
        return []
    else:
        stems = {last}
        m = _UA_ALTERNATION.search(last)
        if m:
            vowel, tail = m.group(1), m.group(2)
            base = last[: m.start()]
            if vowel in "ії":
                stems.add(base + "о" + tail)
                stems.add(base + "е" + tail)
            if vowel == "ї":
                stems.add(base + "є" + tail)
        for stem in stems:
            forms.update(stem + e for e in ("а", "у", "е", "і", "ом", "ем", "ові", "ою"))
    forms.discard(last)
    return sorted(prefix + f for f in forms)


# Nouns of administrative units: the adjective before them declines with them
# ("Харківська область" -> "Харківської області", "Краснодарский край" -> "Краснодарского края").
_ADMIN_NOUNS = {
    "область",
    "край",
    "республика",
    "республіка",
    "округ",
    "район",
    "провинция",
    "провінція",
    "губерния",
    "губернія",
    "штат",
    "воеводство",
    "воєводство",
}
# adjective endings (Russian and Ukrainian, feminine and masculine) -> their other case forms
_ADJ_ENDINGS = (
    ("ая", ("ой", "ую", "ою")),
    ("яя", ("ей", "юю", "ею")),
    ("ий", ("ого", "ому", "им", "ом", "ім")),
    ("ій", ("ього", "ьому", "ім")),
    ("ый", ("ого", "ому", "ым", "ом")),
    ("ой", ("ого", "ому", "ым", "ом")),
    ("а", ("ої", "ій", "у", "ою")),
    ("я", ("ьої", "ій", "ю", "ьою")),
)


def _admin_forms(head: str, noun: str) -> list[str]:
    """``Харківська область`` -> every pairing of the adjective's and the noun's case forms
    (a few pairings are not grammatical; they never occur in text and cost nothing)."""
    pre, _, adj = head.rpartition(" ")
    pre = f"{pre} " if pre else ""
    adjs = {adj}
    for ending, others in _ADJ_ENDINGS:
        if adj.lower().endswith(ending):
            stem = adj[: -len(ending)]
            adjs.update(stem + e for e in others)
            break
    nouns = {noun, *cyrillic_forms(noun)}
    if noun.lower() == "область":
        nouns.update({noun[:-1] + "ю"})  # Ukrainian instrumental: областю
    name = f"{head} {noun}"
    return sorted({f"{pre}{a} {n}" for a in adjs for n in nouns} - {name})
