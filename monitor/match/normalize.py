"""Text normalisation for matching, with a map back to the original characters.

One definition, :func:`fold_char`, says what every character becomes: Unicode case folding,
width folding (full-width ``Ｔｏｋｙｏ`` and mathematical ``𝐁𝐞𝐫𝐥𝐢𝐧`` letters are plain letters),
accent folding (``é`` -> ``e``, ``ø`` -> ``o``, ``ё`` -> ``е``), punctuation, symbols and
whitespace -> a space, soft hyphens, zero-width characters and combining accents dropped.
Text is put in NFC first, so decomposed input (``e`` + U+0301, ``и`` + U+0306) folds exactly
like the composed form. Terms and article text both go through :func:`fold_text`; the result
is ``" " + words joined by single spaces + " "``, so an automaton key ``" fire "`` can only hit
a whole word.

The per-character definition is turned into numpy look-up tables (one per code point below
U+40000) so that a whole article is folded by a few array operations. Building them walks
every code point (about a second), so they are built once per machine and Unicode version
and cached on disk (:mod:`monitor.match.cache`); importing this module builds nothing.
"""

from __future__ import annotations

import codecs
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from monitor.match.cache import cached_file

TABLE_FORMAT = 3  # bump when fold_char changes: a new cache file is built

# Characters dropped outright (never separators): soft hyphen, zero-width joiners, BOM,
# variation selectors and the combining diacritics of Latin/Greek/Cyrillic (what is left of
# an accent after decomposition).
_DROP = (
    frozenset("\u00ad\u200b\u200c\u200d\u2060\ufeff")
    | frozenset(chr(c) for c in range(0x0300, 0x0370))
    | frozenset(chr(c) for c in range(0xFE00, 0xFE10))
    | frozenset(chr(c) for c in range(0xE0000, 0xE0080))
    | frozenset(chr(c) for c in range(0xE0100, 0xE01F0))
)
# Letters without a decomposition that readers treat as accented Latin letters.
_EXTRA = {"ø": "o", "đ": "d", "ł": "l", "ħ": "h", "ı": "i", "ŧ": "t", "ŀ": "l", "ё": "е"}
# Compatibility forms that are the same letters: full-width, half-width, mathematical fonts.
_WIDTH_TAGS = ("<wide>", "<narrow>", "<font>")

UNSPACED_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x9FFF),  # CJK
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
)


def unspaced(ch: str) -> bool:
    """Scripts written without spaces between words: no word-boundary check at that end."""
    cp = ord(ch)
    return cp >= 0x0E00 and any(lo <= cp <= hi for lo, hi in UNSPACED_RANGES)


def fold_char(ch: str, keep_accents: bool = False) -> str:
    """One character (of NFC text) -> its normalised form: empty, one or a few characters.

    ``keep_accents``: the same, but accented letters stay accented (for accent-bearing terms).
    """
    if ch in _DROP:
        return ""
    decomp = unicodedata.decomposition(ch)
    if decomp.startswith(_WIDTH_TAGS):
        ch = unicodedata.normalize("NFKC", ch)
    out = []
    for c in ch.casefold():
        if c in _DROP:
            continue
        if not keep_accents and c in _EXTRA:
            out.append(_EXTRA[c])
            continue
        cat = unicodedata.category(c)
        if cat[0] in "PSZC":
            out.append(" ")
            continue
        if not keep_accents and cat[0] == "L":
            d = unicodedata.normalize("NFD", c)
            # Latin and Greek letters lose their accents; Cyrillic letters (й, ї) are letters
            # of their own and keep them (only ё -> е, above).
            if (
                len(d) >= 2
                and (d[0].isascii() or 0x0370 <= ord(d[0]) < 0x0400)
                and all(0x0300 <= ord(m) < 0x0370 for m in d[1:])
            ):
                c = d[0]
        out.append(c)
    return "".join(out)


# --------------------------------------------------------------------------- tables

LIMIT = 0x40000  # tables cover code points below; the two entries after it are for the rest
_OVF_SPACE, _OVF_DROP = LIMIT, LIMIT + 1
_ODD_MARK = 0xFFFF  # in the one-char table: this code point folds to 0, 2 or 3 chars
_UNSPACED, _NFC = 1, 2  # flag bits


@dataclass(frozen=True, slots=True)
class _Tables:
    one16: np.ndarray  # BMP code point -> its one-char fold (uint16), or _ODD_MARK
    exp16: np.ndarray  # BMP code point -> up to 3 folded chars (uint16)
    one32: np.ndarray  # the same for every code point below LIMIT (+2 overflow entries)
    exp32: np.ndarray
    lens: np.ndarray  # number of folded chars (uint8)
    flags: np.ndarray  # _UNSPACED | _NFC (a character that NFC may change)


def _nfc_unstable() -> set[int]:
    """Code points NFC may change: not NFC alone (singletons), or composing with what precedes."""
    out = {0x1161 + i for i in range(21)} | {0x11A8 + i for i in range(27)}  # Hangul V, T
    for cp in range(LIMIT):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        if unicodedata.combining(ch) or not unicodedata.is_normalized("NFC", ch):
            out.add(cp)
        d = unicodedata.decomposition(ch)
        if d and not d.startswith("<"):
            parts = d.split()
            if len(parts) == 2 and unicodedata.normalize("NFC", ch) == ch:
                out.add(int(parts[1], 16))
    return out


def _build_tables(path: object) -> None:
    n = LIMIT + 2
    one = np.arange(n, dtype=np.uint32)
    lens = np.ones(n, dtype=np.uint8)
    exp = np.zeros((n, 3), dtype=np.uint32)
    exp[:, 0] = one
    flags = np.zeros(n, dtype=np.uint8)
    unstable = _nfc_unstable()
    for cp in range(LIMIT):
        if 0xD800 <= cp < 0xE000:
            continue  # lone surrogates stay as they are
        ch = chr(cp)
        out = fold_char(ch)
        if len(out) == 1:
            one[cp] = exp[cp, 0] = ord(out)
        else:
            assert len(out) <= 3
            lens[cp] = len(out)
            exp[cp, :] = 0
            exp[cp, : len(out)] = [ord(x) for x in out]
            one[cp] = _ODD_MARK  # never read: _expand replaces these positions
        if unspaced(ch):
            flags[cp] |= _UNSPACED
        if cp in unstable:
            flags[cp] |= _NFC
    one[_OVF_SPACE] = exp[_OVF_SPACE, 0] = 32
    one[_OVF_DROP], lens[_OVF_DROP] = _ODD_MARK, 0
    one[0] = exp[0, 0] = 0  # the field separator stays (a NUL in a field is made a space)
    assert one[_ODD_MARK] == 32  # U+FFFF itself folds to a space: the mark is unambiguous
    # one uint32 array, memory-mapped when loaded: only the pages text touches are resident
    packed = np.concatenate([one, exp.reshape(-1), lens.astype(np.uint32), flags.astype(np.uint32)])
    with open(str(path), "wb") as f:
        np.save(f, packed)


_TABLES: _Tables | None = None
_LOCK = threading.Lock()


def tables() -> _Tables:
    """The fold tables: loaded from the cache (a few ms), built there on first use."""
    global _TABLES
    if _TABLES is None:
        with _LOCK:
            if _TABLES is None:
                name = f"unicode-fold-{unicodedata.unidata_version}-v{TABLE_FORMAT}.npy"
                path = cached_file(name, _build_tables, "Unicode folding tables")
                # A plain ndarray over the mapping: the np.memmap subclass costs every
                # operation on its slices a Python-level __array_finalize__/__array_wrap__.
                packed = np.load(path, mmap_mode="r").view(np.ndarray)
                n = LIMIT + 2
                one = packed[:n]
                exp = packed[n : 4 * n].reshape(n, 3)
                lens = np.array(packed[4 * n : 5 * n], dtype=np.uint8)
                flags = np.array(packed[5 * n : 6 * n], dtype=np.uint8)
                bmp_exp = exp[:0x10000]
                assert int(one[:0x10000].max()) < 0x10000 and int(bmp_exp.max()) < 0x10000
                _TABLES = _Tables(
                    one16=one[:0x10000].astype(np.uint16),
                    exp16=bmp_exp.astype(np.uint16),
                    one32=one,
                    exp32=exp,
                    lens=lens,
                    flags=flags,
                )
    return _TABLES


# --------------------------------------------------------------------------- folding


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


def fold_text(text: str) -> tuple[str, np.ndarray, bool]:
    """NFC ``text`` -> (padded normalised text, map, has unspaced-script characters).

    ``map[k]`` is the index in ``text`` of the character that normalised position ``k + 1``
    came from (position 0 is the padding space).
    """
    t = tables()
    raw = text.encode("utf-16-le", "surrogatepass")
    wide = len(raw) != 2 * len(text)  # characters outside the BMP: work in code points
    if wide:
        a = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if len(a) and int(a.max()) >= LIMIT:
            tags = (a >= 0xE0000) & (a < 0xE0200)
            a = np.where(a < LIMIT, a, np.where(tags, _OVF_DROP, _OVF_SPACE)).astype(np.uint32)
        one, exp = t.one32, t.exp32
    else:
        a = np.frombuffer(raw, dtype=np.uint16)
        one, exp = t.one16, t.exp16
    out = one.take(a)
    src = None
    unsp = False
    # Most text has neither odd nor unspaced chars: a max() or two, no second look-up
    if len(a) and not text.isascii():
        if int(a.max()) >= 0x0E00:
            unsp = bool((t.flags.take(a) & _UNSPACED).any())
        if int(out.max()) == _ODD_MARK:
            odd = np.flatnonzero(out == _ODD_MARK)
            out, src = _expand(a, out, odd, t.lens, exp)
    word = out != 32
    keep = word.copy()
    keep[1:] |= word[:-1]  # the first space of each run stays
    pos = keep.nonzero()[0]
    kept = out.take(pos)
    if wide:
        body = codecs.utf_32_le_decode(kept.astype(np.uint32).tobytes(), "surrogatepass")[0]
    else:
        body = codecs.utf_16_le_decode(kept, "surrogatepass")[0]
    norm = " " + body if body[-1:] == " " else " " + body + " "
    return norm, (pos if src is None else src.take(pos)), unsp


def _nfc_map(text: str) -> tuple[str, np.ndarray]:
    """``text`` in NFC, and for each NFC position (and one past the end) its original index.

    Only the clusters around characters NFC may change are normalised, so the map stays
    exact everywhere else; inside a changed cluster each base letter maps to its own.
    """
    t = tables()
    a = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    idx = np.minimum(a, _OVF_SPACE)
    spots = np.flatnonzero(t.flags.take(idx) & _NFC).tolist()
    n = len(text)
    pieces: list[str] = []
    starts: list[int] = []
    done = 0
    for p in spots:
        if p < done:
            continue
        s = p
        while s > done and (unicodedata.combining(text[s]) or s == p):
            s -= 1
        e = p + 1
        while e < n and (
            unicodedata.combining(text[e]) or t.flags[min(ord(text[e]), LIMIT)] & _NFC
        ):
            e += 1
        pieces.append(text[done:s])
        starts.extend(range(done, s))
        seg = text[s:e]
        nfc = unicodedata.normalize("NFC", seg)
        pieces.append(nfc)
        if len(nfc) == len(seg):
            starts.extend(range(s, e))
        else:
            # a base letter maps to its own; a mark after it to the next base (or the end),
            # so a word ending in a marked letter ends after all of its marks
            bases = [s + k for k, c in enumerate(seg) if not unicodedata.combining(c)] or [s]
            bases.append(e)
            b = -1
            for c in nfc:
                if not unicodedata.combining(c) and b + 2 < len(bases):
                    b += 1
                    starts.append(bases[b])
                else:
                    starts.append(bases[b + 1])
        done = e
    pieces.append(text[done:])
    starts.extend(range(done, n + 1))
    return "".join(pieces), np.asarray(starts, dtype=np.int64)


def nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


_ASCII_TABLE = {c: " " for c in range(128) if not chr(c).isalnum()}


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """The padded normalised form of ``text`` (what the automaton sees).

    Cached: building a matcher normalises the same place names over and over."""
    if text.isascii():  # the same result as the tables give, without numpy's per-call cost
        return " " + " ".join(text.lower().translate(_ASCII_TABLE).split()) + " "
    return fold_text(nfc(text).replace(SEP, " "))[0]


def normalize_many(texts: list[str]) -> list[str]:
    """``normalize`` of each text, stripped of its padding, in one pass (gazetteer builds)."""
    joined = " \x00 ".join(nfc(x).replace("\x00", " ") for x in texts)
    norm = fold_text(joined)[0]
    return [part.strip(" ") for part in norm.split("\x00")]


SEP = "\x00"  # between fields in a document's normalised text; never part of a key
_JOIN = " \x00 "


class DocText:
    """An article's title, summary and body normalised as one string, with offsets back.

    ``norm`` is ``" title-words \x00 summary-words \x00 body-words "``, so an automaton key
    (which never holds ``\x00``) can never span two fields. One pass per document: NFC (only
    when the text is not NFC already), then :func:`fold_text`.
    """

    __slots__ = ("_bases", "_nfc", "_src", "norm", "texts", "unspaced")

    def __init__(self, texts: tuple[str, str, str]) -> None:
        self.texts = texts
        parts = [t.replace(SEP, " ") if SEP in t else t for t in texts]
        joined = _JOIN.join(parts)
        b1 = len(parts[0]) + 3
        self._bases = (b1, b1 + len(parts[1]) + 3)
        self._nfc: np.ndarray | None = None
        if not joined.isascii() and not unicodedata.is_normalized("NFC", joined):
            joined, self._nfc = _nfc_map(joined)
        self.norm, src, self.unspaced = fold_text(joined)
        self._src = memoryview(src.data)

    def offsets(self) -> tuple[memoryview | None, tuple[int, int]]:
        """(normalised position - 1 -> joined original position, field starts in the joined
        text) for callers that inline :meth:`span`; (None, ...) when text was not NFC."""
        if self._nfc is not None:
            return None, (0, 0)
        return self._src, self._bases

    def span(self, n_start: int, n_end: int) -> tuple[int, int, int]:
        """Normalised span of word characters -> (field index, start, end) in that field."""
        src = self._src
        s = src[n_start - 1]
        e = src[n_end - 2] + 1
        if self._nfc is not None:
            s = int(self._nfc[s])
            e = int(self._nfc[e])
        b1, b2 = self._bases
        if s < b1:
            return 0, s, e
        if s < b2:
            return 1, s - b1, e - b1
        return 2, s - b2, e - b2


def accent_key(text: str) -> str:
    """Case-folded, punctuation-collapsed text that keeps its accents (for accent-bearing terms)."""
    return " ".join("".join(fold_char(c, keep_accents=True) for c in nfc(text)).split())


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
        if t != f and fold_char(t) != t:
            return False
    return True


def is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"
