"""An article's story signature: a few hundred bytes stored beside the article.

Two MinHash sketches (datasketch's ``affine32`` scheme, fixed seeds, so the same text gives
the same bytes in every process and release of this format) plus the small sets the
decision rule compares exactly:

- ``text``: 128 minima over the body's word 3-shingles (the near-duplicate signal). Only the
  low 16 bits of each minimum are kept (b-bit MinHash): two different minima agree by chance
  once in 65,536, which :func:`text_similarity` corrects for, at half the size.
- ``terms``: 48 minima over the article's names and facts (see ``features``): the candidate
  key for rewrites, which share the facts and names of a report but few of its word triples.
- ``facts``, ``names``: up to 48 hashes each (the smallest, a consistent sample when there are
  more); ``lead``: the facts of the title and first two paragraphs; ``title_numbers``: the numbers
  of the title as text (for "new numbers in the title").

``published`` and the host are not part of the signature: they are stored in the article's
own row, and the same text must give the same bytes wherever it was published.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import numpy as np

from monitor.stories import features as ft

VERSION = 1
TEXT_PERM = 128
TERM_PERM = 48
TEXT_SEED = 15_0001  # fixed forever for VERSION 1: changing it changes every signature
TERM_SEED = 15_0002
SHINGLE = 3
MAX_SET = 48  # facts, names: the 48 smallest hashes are kept (a bottom-k sample)
MAX_LEAD = 16
LEAD_PARAGRAPHS = 2  # the lead: title and first two paragraphs (who, what, when, how many)
MAX_TITLE_NUMBERS = 8
SHORT_BODY = 20  # words; a shorter body is shingled together with its title

_HEADER = struct.Struct("<BBBBBBBxI")  # version, 2 perms, facts, names, lead, title bytes, shingles
_MAX16 = 0xFFFF


@functools.cache
def _permutations(seed: int, num_perm: int) -> np.ndarray:
    """datasketch's ``affine32`` permutations for ``seed``: odd ``a`` and any ``b`` (uint32)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return np.array([a, b])


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (datasketch's pre-mix before the permutations)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


_TOKEN_CACHE: dict[str, int] = {}
_TOKEN_CACHE_MAX = 500_000


class SignatureError(ValueError):
    """Bytes that are not a signature of this format (corrupt, truncated, other version)."""


def _minhash(values: list[int], seed: int, perms: np.ndarray) -> np.ndarray:
    """Low 16 bits of the MinHash of 32-bit ``values`` (all 0xFFFF when empty).

    The same arithmetic as datasketch's ``MinHash(scheme="affine32")`` with an identity hash
    function, bit for bit (``tests/test_stories.py`` compares them): importing datasketch
    loads its LSH classes and scipy, 0.5 s and ~40 MB in every process that makes signatures.
    """
    if not values:
        return np.full(len(perms[0]), _MAX16, dtype=np.uint16)
    a, b = perms
    hv = _fmix32(np.array(values, dtype=np.uint32)).reshape(-1, 1)
    with np.errstate(over="ignore"):
        phv = hv * a + b  # uint32: the wraparound is the modulo 2**32
    return (phv.min(axis=0) & np.uint32(_MAX16)).astype(np.uint16)


def _token_hashes(words: list[str]) -> np.ndarray:
    cache = _TOKEN_CACHE
    if len(cache) > _TOKEN_CACHE_MAX:
        cache.clear()
    hs = [cache.get(w) for w in words]
    if None in hs:
        for i, h in enumerate(hs):
            if h is None:
                w = words[i]
                hs[i] = cache[w] = ft.h32(w)
    return np.array(hs, dtype=np.uint32)


def shingle_hashes(words: list[str]) -> np.ndarray:
    """Distinct 32-bit hashes of the word 3-shingles (the words themselves when fewer)."""
    h = _token_hashes(words)
    if len(h) < SHINGLE:
        return np.unique(h)
    with np.errstate(over="ignore"):
        s = h[:-2] * np.uint32(0x9E3779B1) + h[1:-1] * np.uint32(0x85EBCA77) + h[2:]
    return np.unique(s)


def _bottom(hashes: set[int], k: int) -> tuple[int, ...]:
    return tuple(sorted(hashes)[:k])


@dataclass(frozen=True, slots=True, eq=True)
class Signature:
    text: np.ndarray  # uint16[TEXT_PERM]
    terms: np.ndarray  # uint16[TERM_PERM]
    shingles: int  # distinct shingles in the body (0: no text)
    facts: tuple[int, ...]  # sorted 32-bit hashes
    names: tuple[int, ...]
    lead: tuple[int, ...]
    title_numbers: tuple[str, ...]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def to_bytes(self) -> bytes:
        title = ",".join(self.title_numbers).encode("ascii")
        head = _HEADER.pack(
            VERSION,
            TEXT_PERM,
            TERM_PERM,
            len(self.facts),
            len(self.names),
            len(self.lead),
            len(title),
            self.shingles,
        )
        sets = np.array([*self.facts, *self.names, *self.lead], dtype="<u4").tobytes()
        return b"".join(
            (
                head,
                self.text.astype("<u2").tobytes(),
                self.terms.astype("<u2").tobytes(),
                sets,
                title,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        _, tp, mp, nf, nn, nl, _, shingles = check_bytes(data)
        off = _HEADER.size
        text = np.frombuffer(data, dtype="<u2", count=tp, offset=off).astype(np.uint16)
        off += 2 * tp
        terms = np.frombuffer(data, dtype="<u2", count=mp, offset=off).astype(np.uint16)
        off += 2 * mp
        sets = np.frombuffer(data, dtype="<u4", count=nf + nn + nl, offset=off).tolist()
        off += 4 * (nf + nn + nl)
        try:
            title = data[off:].decode("ascii")
        except UnicodeDecodeError as e:
            raise SignatureError("story signature: bad title numbers") from e
        return cls(
            text=text,
            terms=terms,
            shingles=shingles,
            facts=tuple(sets[:nf]),
            names=tuple(sets[nf : nf + nn]),
            lead=tuple(sets[nf + nn :]),
            title_numbers=tuple(title.split(",")) if title else (),
        )


def check_bytes(data: bytes) -> tuple[int, ...]:
    """The header fields of serialised signature bytes; SignatureError unless well-formed."""
    try:
        head = _HEADER.unpack_from(data, 0)
    except struct.error as e:
        raise SignatureError(f"story signature too short ({len(data)} bytes)") from e
    ver, tp, mp, nf, nn, nl, nt, _ = head
    if ver != VERSION or tp != TEXT_PERM or mp != TERM_PERM:
        raise SignatureError(f"story signature version {ver} ({tp}/{mp}), expected {VERSION}")
    size = _HEADER.size + 2 * (tp + mp) + 4 * (nf + nn + nl) + nt
    if len(data) != size:
        raise SignatureError(f"story signature of {len(data)} bytes, expected {size}")
    return head


# Where the two sketches start in the serialised form: the index reads them without decoding.
TEXT_OFFSET = _HEADER.size


def fact_hash(fact: str) -> int:
    return ft.h32("f:" + fact)


def _fact_hashes(facts: set[str]) -> set[int]:
    return {fact_hash(f) for f in facts}


def _title_numbers(title: str) -> tuple[str, ...]:
    nums = {f for f in ft.facts(title) if not f.startswith(("wd", "mo"))}
    return tuple(sorted(nums, key=lambda n: (len(n), n))[:MAX_TITLE_NUMBERS])


def fingerprint(title: str, text: str) -> Signature:
    """The signature of an article from its title and body (extracted text or feed summary).

    Pure and deterministic; costs well under a millisecond for a 5 KB article
    (``bench/stories.py``), run in the daemon's process pool beside extraction.
    """
    title = title or ""
    text = text or ""
    title_words = ft.words(title)
    body = ft.words(text)
    shingled = body if len(body) >= SHORT_BODY else title_words + body
    sh = shingle_hashes(shingled)
    lead_text = "\n\n".join(text.strip().split("\n\n", LEAD_PARAGRAPHS)[:LEAD_PARAGRAPHS])
    facts = _fact_hashes(ft.facts(f"{title}\n{text}", title_words + body))
    names = {ft.h32("n:" + n) for n in ft.names(text)}
    lead = _fact_hashes(ft.facts(f"{title}\n{lead_text}"))
    terms = sorted(facts | names)
    return Signature(
        text=_minhash(sh.tolist(), TEXT_SEED, _permutations(TEXT_SEED, TEXT_PERM)),
        terms=_minhash(terms, TERM_SEED, _permutations(TERM_SEED, TERM_PERM)),
        shingles=len(sh),
        facts=_bottom(facts, MAX_SET),
        names=_bottom(names, MAX_SET),
        lead=_bottom(lead, MAX_LEAD),
        title_numbers=_title_numbers(title),
    )
