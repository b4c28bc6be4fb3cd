"""What an article says, reduced to comparable tokens: words, facts, names.

Everything here is a pure function of the text and stable across processes and releases
(``zlib.crc32`` rather than ``hash()``, fixed word lists), because signatures made from it
are stored and compared by other daemons later. Changing any rule here means bumping
``signature.VERSION``.

- **Words** (for shingles): NFKD, combining marks dropped, case-folded, runs of letters and
  digits.
- **Facts**: numbers (separators dropped, so ``1,250``, ``1.250`` and ``1 250`` are one
  fact; ``3-1`` stays a score), small numbers written as words, weekdays and months, in
  English, Spanish, French, German, Italian and Portuguese. Facts are what changes between
  two reports of the same template (a market close, a match) and what an update changes only
  in part.
- **Names**: capitalised words inside a sentence (not its first word), in the body. A rough
  named-entity signal that needs no model and works the same in every Latin-script language
  (in German it also picks up common nouns; the rule compares sets, so that only dilutes).
"""

from __future__ import annotations

import re
import unicodedata
import zlib

_WORD_RE = re.compile(r"[^\W_]+")
# A number with thousands/decimal/time separators, optionally a score or range ("3-1").
_NUMBER_RE = re.compile(r"\d+(?:[.,:'\u00a0\u202f]\d+)*(?:[-–]\d+(?:[.,:]\d+)*)?")

# Small numbers written out, mapped to their digits. Words that are also ordinary words in
# another of these languages (en "once", de "elf", fr "neuf", it "sei", "otto") are left out:
# the same article must give the same facts whatever language it is tagged with.
_NUMBER_WORDS: dict[str, str] = {}
for _value, _words in {
    2: "two dos deux zwei due dois duas",
    3: "three tres trois drei tre três",
    4: "four cuatro quatre vier quattro quatro",
    5: "five cinco cinq fünf cinque",
    6: "six seis sechs",
    7: "seven siete sieben sette sete",
    8: "eight ocho huit acht oito",
    9: "nine nueve neun nove",
    10: "ten diez dix zehn dieci dez",
    11: "eleven",
    12: "twelve doce douze zwölf dodici",
    15: "fifteen quince quinze fünfzehn quindici",
    20: "twenty veinte vingt zwanzig venti vinte",
}.items():
    for _w in _words.split():
        _NUMBER_WORDS[_w] = str(_value)

_WEEKDAYS = {
    1: "monday lunes lundi montag lunedi",
    2: "tuesday martes mardi dienstag martedi",
    3: "wednesday miercoles mercredi mittwoch mercoledi",
    4: "thursday jueves jeudi donnerstag giovedi",
    5: "friday viernes vendredi freitag venerdi",
    6: "saturday sabado samedi samstag sonnabend",
    7: "sunday domingo dimanche sonntag domenica",
}
_MONTHS = {
    1: "january enero janvier januar gennaio janeiro",
    2: "february febrero fevrier februar febbraio fevereiro",
    3: "march marzo mars marz marzo marco",
    4: "april abril avril aprile",
    5: "mayo mai maggio maio",  # English "may" only capitalised, see _calendar
    6: "june junio juin juni giugno junho",
    7: "july julio juillet juli luglio julho",
    8: "august agosto aout",
    9: "september septiembre septembre settembre setembro",
    10: "october octubre octobre oktober ottobre outubro",
    11: "november noviembre novembre novembro",
    12: "december diciembre decembre dezember dicembre dezembro",
}
_MONTH_NUMBER = {w: n for n, names in _MONTHS.items() for w in names.split()} | {"may": 5}
_MONTH_WORDS = frozenset(_MONTH_NUMBER)
_DATE_GLUE = frozenset({"de", "del", "du", "di", "of", "do"})  # "7 de marzo", "7 of March"
_CALENDAR: dict[str, str] = {}
for _n, _names in _WEEKDAYS.items():
    for _w in _names.split():
        _CALENDAR[_w] = f"wd{_n}"
for _n, _names in _MONTHS.items():
    for _w in _names.split():
        _CALENDAR[_w] = f"mo{_n}"

# Words capitalised inside sentences that are not names: pronouns, titles, and the words
# that start quoted speech or headlines pasted into text. Kept short on purpose.
_NOT_NAMES = frozenset(
    "i mr mrs ms dr st the a an it he she we they this that in on at el la los las le les "
    "der die das ein eine il lo gli un une des du de del y et und e o".split()
)


_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_NOT_DIGIT = re.compile(r"[^\d-]")
# Letters NFKD does not decompose but readers treat as their base letter.
_LETTERS = str.maketrans({"ø": "o", "đ": "d", "ł": "l", "ħ": "h", "ı": "i", "æ": "ae", "œ": "oe"})
_MAY = re.compile(r"\bMay\b")
_WORD_FACTS = frozenset(_NUMBER_WORDS) | frozenset(_CALENDAR)
# Where sentences (and headlines, quotes, list items) start: a new word after these is not
# taken as a name however it is capitalised.
_SENTENCE_SPLIT = re.compile(r'[.!?:;"“”«»—…\n]|\s–\s')
_FOLD_CACHE: dict[str, str] = {}


def fold(text: str) -> str:
    """Case-folded, accents dropped (NFKD minus combining marks): ``Ødegaard`` -> ``odegaard``."""
    if text.isascii():
        return text.lower()
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text.casefold())).translate(_LETTERS)


def words(text: str) -> list[str]:
    return _WORD_RE.findall(fold(text))


def h32(token: str) -> int:
    """A 32-bit hash that is the same in every process and Python version."""
    return zlib.crc32(token.encode("utf-8"))


def numbers(text: str) -> set[str]:
    """Numbers, separators dropped: ``"1,250"`` -> ``"1250"``; ``"3-1"`` stays a score."""
    out: set[str] = set()
    for tok in _NUMBER_RE.findall(text):
        out.add(tok if tok.isdigit() else _NOT_DIGIT.sub("", tok.replace("–", "-")))
    return out


def facts(text: str, folded_words: list[str] | None = None) -> set[str]:
    """Numbers, numbers in words, weekdays, months and dates (``"wd2"``, ``"mo3"``, ``"md3-7"``).

    ``folded_words`` (``words(text)``) may be passed when the caller has them already.
    """
    out = numbers(text)
    ws = words(text) if folded_words is None else folded_words
    found = _WORD_FACTS.intersection(ws)
    for w in found:
        out.add(_NUMBER_WORDS.get(w) or _CALENDAR[w])
    english_may = _MAY.search(text) is not None
    if english_may:  # English "may" counts only as the capitalised month
        out.add("mo5")
    if english_may or not found.isdisjoint(_MONTH_WORDS):
        out.update(dates(ws, english_may=english_may))
    return out


def dates(ws: list[str], *, english_may: bool = False) -> set[str]:
    """Calendar dates in folded words: ``7 de marzo``, ``March 7``, ``7. März`` -> ``"md3-7"``.

    ``may`` counts only when the text has the capitalised month (``english_may``).
    """
    out: set[str] = set()
    n = len(ws)
    for i, w in enumerate(ws):
        month = _MONTH_NUMBER.get(w)
        if month is None or (w == "may" and not english_may):
            continue
        around = [ws[i - 1]] if i else []
        if i >= 2 and ws[i - 1] in _DATE_GLUE:
            around.append(ws[i - 2])
        if i + 1 < n:
            around.append(ws[i + 1])
        for day in around:
            if day.isdigit() and len(day) <= 2 and 1 <= int(day) <= 31:
                out.add(f"md{month}-{int(day)}")
                break
    return out


def names(text: str) -> set[str]:
    """Capitalised words that do not start a sentence (folded): a cheap stand-in for entities."""
    caps: set[str] = set()
    find = _WORD_RE.findall
    for sentence in _SENTENCE_SPLIT.split(text):
        toks = find(sentence)
        caps.update(t for t in toks[1:] if t[0].isupper())
    cache = _FOLD_CACHE
    if len(cache) > 200_000:
        cache.clear()
    out: set[str] = set()
    for raw in caps:
        w = cache.get(raw)
        if w is None:
            w = cache[raw] = fold(raw)
        if w not in _NOT_NAMES and w not in _WORD_FACTS and not w.isdigit():
            out.add(w)
    return out
