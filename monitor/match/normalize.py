"""Text normalisation for matching, with a map back to the original characters.

Every term and every article field goes through the same :func:`normalize`: Unicode case
folding, accent folding (``é`` -> ``e``, ``ø`` -> ``o``, ``ё`` -> ``е``), punctuation,
symbols and whitespace turned into single spaces, and one space of padding at each end, so
that an automaton key ``" fire "`` can only hit a whole word.

The fast path stays in C (``str.casefold``, one ``bytes.translate`` for ASCII punctuation,
``str.split``/``join`` for collapsing); characters that change length under folding (``ß``,
``İ``, ligatures, decomposed accents, soft hyphens) send the text down a per-character path
that builds an explicit offset map. Both paths give the same normalised string.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from bisect import bisect_right
from itertools import accumulate

import numpy as np

# Characters dropped outright (never separators): soft hyphen, zero-width joiners, BOM and the
# combining diacritics of Latin/Greek/Cyrillic (what is left of an accent after decomposition).
_DROP = frozenset("\u00ad\u200b\u200c\u200d\u2060\ufeff") | frozenset(
    chr(c) for c in range(0x0300, 0x0370)
)


def _is_word_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "LNM"


def _tables() -> tuple[dict[int, str], re.Pattern[str], bytes, re.Pattern[str]]:
    """(fold table for non-ASCII chars, regex of chars it changes, ASCII byte table, slow-path regex)."""
    return _TABLES


def _char_class(cps: list[int]) -> str:
    ranges: list[str] = []
    start = prev = cps[0]
    for cp in [*cps[1:], -1]:
        if cp != prev + 1:
            ranges.append(
                re.escape(chr(start))
                if start == prev
                else f"{re.escape(chr(start))}-{re.escape(chr(prev))}"
            )
            start = cp
        prev = cp
    return "[" + "".join(ranges) + "]"


def _make_tables() -> tuple[
    dict[int, str], re.Pattern[str], bytes, re.Pattern[str], re.Pattern[str]
]:
    fold: dict[int, str] = {}
    extra = {"ø": "o", "đ": "d", "ł": "l", "ħ": "h", "ı": "i", "ŧ": "t", "ŀ": "l", "ё": "е"}
    for cp in range(0x80, 0x30000):
        ch = chr(cp)
        if ch in _DROP:
            continue
        if ch in extra:
            fold[cp] = extra[ch]
            continue
        cat = unicodedata.category(ch)
        if cat[0] in "PSZC":
            fold[cp] = " "
            continue
        if cat[0] != "L":
            continue
        decomposed = unicodedata.normalize("NFD", ch)
        if len(decomposed) < 2:
            continue
        base, marks = decomposed[0], decomposed[1:]
        if not all(0x0300 <= ord(m) < 0x0370 for m in marks):
            continue
        # Latin and Greek letters lose their accents; Cyrillic letters (й, ї) are letters of
        # their own and keep them (only ё -> е, above).
        if base.isascii() or 0x0370 <= ord(base) < 0x0400:
            fold[cp] = base
    # Everything in `fold` is one char -> one char; whitespace of any kind -> one space.
    # BMP chars in one class (sre compiles it to a lookup table: O(1) per char); astral chars
    # (emoji, rare CJK) in a plain range, translated by the same table.
    bmp = sorted(cp for cp in fold if cp < 0x10000)
    fold_re = re.compile("(?:" + _char_class(bmp) + "|[\U00010000-\U0010ffff])+")
    ascii_table = bytearray(range(256))
    for b in range(128):
        if not chr(b).isalnum():
            ascii_table[b] = 0x20
    # Chars that vanish, or whose case folding yields one that does (İ -> i + dot above).
    slow = sorted(
        {ord(c) for c in _DROP}
        | {cp for cp in range(0x80, 0x30000) if any(c in _DROP for c in chr(cp).casefold())}
    )
    slow_re = re.compile(_char_class([cp for cp in slow if cp < 0x10000]))
    expanding = [cp for cp in range(0x80, 0x30000) if len(chr(cp).casefold()) != 1]
    assert all(cp < 0x10000 for cp in [*slow, *expanding])
    return fold, fold_re, bytes(ascii_table), slow_re, re.compile(_char_class(expanding))


_TABLES_ALL = _make_tables()
_TABLES = _TABLES_ALL[:4]
_EXPANDING = _TABLES_ALL[4]


def _fold_char(ch: str) -> str:
    """One original character -> its normalised form (may be empty or several chars)."""
    fold, _, table, _ = _tables()
    out = []
    for c in ch.casefold():
        if c in _DROP:
            continue
        cp = ord(c)
        if cp < 128:
            out.append(chr(table[cp]))
        else:
            out.append(fold.get(cp, c))
    return "".join(out)


class FieldText:
    """One article field, normalised, with a lazy map from normalised offsets to original ones.

    ``norm`` is ``" " + words joined by single spaces + " "``.
    """

    __slots__ = ("_exp", "_flat", "_idx", "_runs_n", "_runs_shift", "norm", "orig")

    def __init__(self, orig: str) -> None:
        self.orig = orig
        self._idx: list[int] | None = None  # slow path: flat position -> original position
        self._runs_n: list[int] | None = None
        self._runs_shift: list[int] = []
        self._exp: tuple[list[int], list[int], list[int], list[int]] | None = None
        flat = _flat_fast(orig)
        if flat is None:
            flat, self._idx = _flat_slow(orig)
        self._flat = flat  # same length as orig on the fast path, unless casefold expanded
        self.norm = " " + _RUNS.sub(" ", flat).strip(" ") + " "

    def _build_runs(self) -> None:
        """Where whitespace runs were collapsed: positions in ``norm`` and cumulative shifts."""
        flat = self._flat
        lead = len(flat) - len(flat.lstrip(" "))
        spans = [m.span() for m in _RUNS.finditer(flat, lead)]
        if spans and spans[-1][1] == len(flat):
            spans.pop()  # trailing whitespace: nothing after it to map
        shifts = list(accumulate((e - s - 1 for s, e in spans), initial=lead - 1))
        # the single space that replaced run k sits at norm position s_k - shifts[k]; the
        # word after it starts one further
        runs_n = [0, *(s - sh + 1 for (s, _), sh in zip(spans, shifts, strict=False))]
        self._runs_n = runs_n
        self._runs_shift = shifts

    def to_flat(self, n_pos: int) -> int:
        """Normalised offset (padded ``norm``) of a word character -> offset in the folded text."""
        if self._runs_n is None:
            self._build_runs()
        assert self._runs_n is not None
        i = bisect_right(self._runs_n, n_pos) - 1
        return n_pos + self._runs_shift[i]

    def span(self, n_start: int, n_end: int) -> tuple[int, int]:
        """Normalised span [n_start, n_end) of word characters -> original span."""
        fs = self.to_flat(n_start)
        fe = self.to_flat(n_end - 1)
        if self._idx is not None:
            return self._idx[fs], self._idx[fe] + 1
        if len(self._flat) != len(self.orig):
            return self._unexpand(fs), self._unexpand(fe) + 1
        return fs, fe + 1

    def _unexpand(self, f: int) -> int:
        """Folded offset -> original offset where casefold expanded chars (ß -> ss)."""
        if self._exp is None:
            starts: list[int] = []
            origs: list[int] = []
            lens: list[int] = []
            after: list[int] = []
            extra = 0
            for m in _EXPANDING.finditer(self.orig):
                n = len(m.group().casefold())
                starts.append(m.start() + extra)
                origs.append(m.start())
                lens.append(n)
                extra += n - 1
                after.append(extra)
            self._exp = (starts, origs, lens, after)
        starts, origs, lens, after = self._exp
        i = bisect_right(starts, f) - 1
        if i < 0:
            return f
        if f < starts[i] + lens[i]:
            return origs[i]
        return f - after[i]


_RUNS = re.compile("  +")  # after folding, every separator is a plain space


def _flat_fast(text: str) -> str | None:
    """Fold ``text`` keeping one char per original char, or None when that is impossible."""
    fold, fold_re, table, slow_re = _tables()
    folded = text.casefold()
    if not text.isascii():
        if slow_re.search(text):
            return None
        folded = fold_re.sub(lambda m: m.group().translate(fold), folded)
    return folded.encode().translate(table).decode()


def _flat_slow(text: str) -> tuple[str, list[int]]:
    parts: list[str] = []
    idx: list[int] = []
    for i, ch in enumerate(text):
        piece = _fold_char(ch)
        parts.append(piece)
        idx.extend([i] * len(piece))
    return "".join(parts), idx


SEP = "\x00"  # between fields in a document's normalised text; never part of a key
_JOIN = " \x00 "
_ODD, _UNSPACED = 1, 2  # flag bits per BMP code point
# In the one-char fold table, a char that folds to 0, 2 or 3 chars maps to this (U+FFFF itself
# folds to a space): one ``max()`` of the folded text tells whether it needs splicing, and
# where (no second table look-up over the whole article).
_ODD_MARK = 0xFFFF
_UNSPACED_MIN = 0x0E00  # the lowest code point of UNSPACED_RANGES
_NP: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


def _np_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(one-char fold, output lengths, up to 3 output chars, flags) for every BMP code point.

    The same per-character folding as :func:`_fold_char`, as arrays, so a whole document is
    folded by a few numpy look-ups instead of Python or regex work per character. Built on
    first use (about 50 ms).
    """
    global _NP
    if _NP is None:
        fold, _, table, _ = _tables()
        one = np.arange(0x10000, dtype=np.uint16)
        lens = np.ones(0x10000, dtype=np.uint8)
        exp = np.zeros((0x10000, 3), dtype=np.uint16)
        exp[:, 0] = one
        flags = np.zeros(0x10000, dtype=np.uint8)
        for cp in range(0x10000):
            if 0xD800 <= cp < 0xE000:
                continue  # lone surrogates stay as they are
            ch = chr(cp)
            c = ch.casefold()
            if len(c) == 1 and c not in _DROP:
                o = ord(c)
                out = chr(table[o]) if o < 128 else fold.get(o, c)
            else:
                out = _fold_char(ch)
            if len(out) == 1:
                one[cp] = exp[cp, 0] = ord(out)
            else:
                assert len(out) <= 3 and all(ord(x) < 0x10000 for x in out)
                lens[cp] = len(out)
                exp[cp, : len(out)] = [ord(x) for x in out]
                one[cp] = _ODD_MARK  # never read: _expand replaces these positions
                flags[cp] |= _ODD
            if unspaced(ch):
                flags[cp] |= _UNSPACED
        one[0] = exp[0, 0] = 0  # the field separator stays (a NUL in a field is made a space)
        assert _UNSPACED_MIN == min(lo for lo, _ in UNSPACED_RANGES) and one[_ODD_MARK] == 32
        _NP = one, lens, exp, flags
    return _NP


def _expand(
    a: np.ndarray, out: np.ndarray, odd: np.ndarray, lens: np.ndarray, exp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Splice in characters that fold to 0, 2 or 3 chars (soft hyphen, ``ß``, ``İ``).

    Returns the folded code units and, for each, the index of its original code unit.
    """
    if len(odd) > 64:  # many (decomposed accents throughout): fully vectorised
        ln = lens.take(a)
        src = np.repeat(np.arange(len(a)), ln)
        first = np.cumsum(ln, dtype=np.int64) - ln
        return exp[a.take(src), np.arange(len(src)) - first.take(src)], src
    outs: list[np.ndarray] = []
    srcs: list[np.ndarray] = []
    prev = 0
    for p, cp in zip(odd.tolist(), a.take(odd).tolist(), strict=True):
        n = int(lens[cp])
        outs.append(out[prev:p])
        srcs.append(np.arange(prev, p))
        if n:
            outs.append(exp[cp, :n])
            srcs.append(np.full(n, p))
        prev = p + 1
    outs.append(out[prev:])
    srcs.append(np.arange(prev, len(a)))
    return np.concatenate(outs), np.concatenate(srcs)


class DocText:
    """An article's title, summary and body normalised as one string, with offsets back.

    ``norm`` is ``" title-words \x00 summary-words \x00 body-words "``: the same words as each
    field's :class:`FieldText` ``norm``, so an automaton key (which never holds ``\x00``) can
    never span two fields. One pass per document: UTF-16 code units through numpy look-up
    tables (case folding, accent folding, separators, ``ß`` -> ``ss``, dropped soft hyphens),
    runs of spaces collapsed with a mask that also yields the offset map. Text with characters
    outside the BMP (emoji) takes the per-field :class:`FieldText` path; both give the same
    words and the same original spans (tested).
    """

    __slots__ = ("_bases", "_fts", "_nbases", "_src", "norm", "texts", "unspaced")

    def __init__(self, texts: tuple[str, str, str], *, fast: bool = True) -> None:
        self.texts = texts
        self._fts: tuple[FieldText, ...] = ()
        if not (fast and self._fast(texts)):
            self._slow(texts)

    def _fast(self, texts: tuple[str, str, str]) -> bool:
        one, lens, exp, flags = _np_tables()
        parts = [t.replace(SEP, " ") if SEP in t else t for t in texts]
        joined = _JOIN.join(parts)
        raw = joined.encode("utf-16-le", "surrogatepass")
        if len(raw) != 2 * len(joined):
            return False  # characters outside the BMP
        a = np.frombuffer(raw, dtype=np.uint16)
        out = one.take(a)
        src = None
        unsp = False
        # Most text has neither odd nor unspaced chars: a max() or two, no second look-up
        if not joined.isascii():
            if int(a.max()) >= _UNSPACED_MIN:
                unsp = bool((flags.take(a) & _UNSPACED).any())
            if int(out.max()) == _ODD_MARK:
                odd = np.flatnonzero(out == _ODD_MARK)
                out, src = _expand(a, out, odd, lens, exp)
        word = out != 32
        keep = word.copy()
        keep[1:] |= word[:-1]  # the first space of each run stays
        pos = keep.nonzero()[0]
        body = codecs.utf_16_le_decode(out.take(pos), "surrogatepass")[0]
        # the joined text always holds words or separators; a trailing run left one space
        self.norm = " " + body if body[-1:] == " " else " " + body + " "
        self._src = memoryview(pos if src is None else src.take(pos))
        b1 = len(parts[0]) + 3
        self._bases = (b1, b1 + len(parts[1]) + 3)
        self.unspaced = unsp
        return True

    def _slow(self, texts: tuple[str, str, str]) -> None:
        fts = tuple(FieldText(t) for t in texts)
        self._fts = fts
        n1 = len(fts[0].norm) + 1
        self._nbases = (n1, n1 + len(fts[1].norm) + 1)
        self.norm = SEP.join(ft.norm for ft in fts)
        self.unspaced = any(_UNSPACED_CHAR.search(ft.norm) for ft in fts)

    def offsets(self) -> tuple[memoryview | None, tuple[int, int]]:
        """(normalised position - 1 -> joined original position, field starts in the joined
        text) for callers that inline :meth:`span`; (None, ...) on the per-field path."""
        if self._fts:
            return None, (0, 0)
        return self._src, self._bases

    def span(self, n_start: int, n_end: int) -> tuple[int, int, int]:
        """Normalised span of word characters -> (field index, start, end) in that field."""
        if self._fts:
            b1, b2 = self._nbases
            rank = 0 if n_start < b1 else 1 if n_start < b2 else 2
            base = (0, b1, b2)[rank]
            s, e = self._fts[rank].span(n_start - base, n_end - base)
            return rank, s, e
        src = self._src
        s = src[n_start - 1]
        e = src[n_end - 2] + 1
        b1, b2 = self._bases
        if s < b1:
            return 0, s, e
        if s < b2:
            return 1, s - b1, e - b1
        return 2, s - b2, e - b2


def normalize(text: str) -> str:
    """The padded normalised form of ``text`` (what the automaton sees)."""
    return FieldText(text).norm


def accent_key(text: str) -> str:
    """Case-folded, punctuation-collapsed text that keeps its accents (for accent-bearing terms)."""
    _, _, table, _ = _tables()
    text = unicodedata.normalize("NFC", text).casefold()
    out = []
    for c in text:
        cp = ord(c)
        if cp < 128:
            out.append(chr(table[cp]))
        elif c in _DROP:
            continue
        elif unicodedata.category(c)[0] in "PSZC":
            out.append(" ")
        else:
            out.append(c)
    return " ".join("".join(out).split())


def has_accents(term: str) -> bool:
    """Whether folding removes anything from ``term`` beyond case and punctuation."""
    return normalize(term).strip() != accent_key(term)


def accents_agree(term_key: str, found_key: str, prefix: bool) -> bool:
    """Accents in the term must be present in the text; unaccented term letters match any."""
    if prefix:
        if len(found_key) < len(term_key):
            return False
        found_key = found_key[: len(term_key)]
    elif len(found_key) != len(term_key):
        return found_key == term_key
    for t, f in zip(term_key, found_key, strict=True):
        if t != f and _fold_char(t) != t:
            return False
    return True


UNSPACED_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x9FFF),  # CJK
    (0xF900, 0xFAFF),
    (0x20000, 0x2FFFF),
)


_UNSPACED_CHAR = re.compile(
    "[" + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in UNSPACED_RANGES) + "]"
)


def unspaced(ch: str) -> bool:
    """Scripts written without spaces between words: no word-boundary check at that end."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in UNSPACED_RANGES)


def is_word_char(ch: str) -> bool:
    return _is_word_char(ch)
