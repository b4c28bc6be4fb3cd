"""Which story a new article belongs to: LSH candidates, then the decision rule.

:func:`decide` is the whole decision as a pure function of the new article and a set of
stored articles (any that share an LSH key with it), so a daemon deciding from its memory
and one deciding from rows it just read from SQL reach the same story. :class:`StoryIndex`
keeps the articles of the time window in memory (a few hundred bytes each, numpy arrays,
no per-article Python objects besides the signature bytes) and finds the candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.stories.rule import Evidence, compare
from monitor.stories.signature import (
    TERM_PERM,
    TEXT_OFFSET,
    TEXT_PERM,
    Signature,
    SignatureError,
    check_bytes,
)

DEFAULT_WINDOW = timedelta(hours=48)
ROWS = 3  # minima per LSH band
TEXT_BANDS = 32  # 96 of the 128 text minima: P(candidate) = 1 - (1 - J^3)^32
TERM_BANDS = 16  # all 48 term minima:         P(candidate) = 1 - (1 - J^3)^16
BANDS = TEXT_BANDS + TERM_BANDS
MAX_VERIFY = 32  # candidates fully compared, the most similar first
_MERGE_KEYS = 1 << 16  # pending keys merged into the sorted arrays in one go
_EMPTY = 0xFFFF

SigLike = Signature | bytes


def _epoch(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _as_bytes(sig: SigLike) -> bytes:
    return sig.to_bytes() if isinstance(sig, Signature) else bytes(sig)


def _as_sig(sig: SigLike) -> Signature:
    return sig if isinstance(sig, Signature) else Signature.from_bytes(sig)


def _sketches(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text minima n x 128, term minima n x 48, shingle counts n) read in place from the bytes."""
    n = len(blobs)
    width = 2 * (TEXT_PERM + TERM_PERM)
    raw = b"".join(b[TEXT_OFFSET : TEXT_OFFSET + width] for b in blobs)
    mat = np.frombuffer(raw, dtype="<u2").reshape(n, TEXT_PERM + TERM_PERM)
    shingles = np.array([int.from_bytes(b[8:12], "little") for b in blobs], dtype=np.int64)
    return mat[:, :TEXT_PERM], mat[:, TEXT_PERM:], shingles


def _keys_matrix(text: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """LSH keys, n x 48 uint64: band number in bits 48-53, three 16-bit minima below.

    Exact (no hashing), so the same keys can live in an indexed SQL column (they fit in a
    signed BIGINT). An empty sketch (no text, or no names and facts) gets key 0 for its
    bands, which is never looked up.
    """
    n = text.shape[0]
    t = text[:, : TEXT_BANDS * ROWS].astype(np.uint64).reshape(n, TEXT_BANDS, ROWS)
    m = terms[:, : TERM_BANDS * ROWS].astype(np.uint64).reshape(n, TERM_BANDS, ROWS)
    both = np.concatenate([t, m], axis=1)
    keys = (both[:, :, 0] << np.uint64(32)) | (both[:, :, 1] << np.uint64(16)) | both[:, :, 2]
    keys |= np.arange(BANDS, dtype=np.uint64) << np.uint64(48)
    empty_text = (text == _EMPTY).all(axis=1)
    empty_terms = (terms == _EMPTY).all(axis=1)
    keys[empty_text, :TEXT_BANDS] = 0
    keys[empty_terms, TEXT_BANDS:] = 0
    return keys


_BAND_TAGS = np.arange(BANDS, dtype=np.uint64) << np.uint64(48)
_TEXT_ROWS = TEXT_BANDS * ROWS
_TERM_ROWS = TERM_BANDS * ROWS


def _row_keys(blob: bytes) -> list[int]:
    """The non-zero LSH keys of one serialised signature (as ``_keys_matrix``, one row)."""
    v = np.frombuffer(blob, dtype="<u2", count=TEXT_PERM + TERM_PERM, offset=TEXT_OFFSET)
    both = np.concatenate([v[:_TEXT_ROWS], v[TEXT_PERM : TEXT_PERM + _TERM_ROWS]])
    rows = both.astype(np.uint64).reshape(BANDS, ROWS)
    keys = (
        (rows[:, 0] << np.uint64(32)) | (rows[:, 1] << np.uint64(16)) | rows[:, 2] | _BAND_TAGS
    ).tolist()
    out: list[int] = []
    if not (v[:TEXT_PERM] == _EMPTY).all():
        out += keys[:TEXT_BANDS]
    if not (v[TEXT_PERM:] == _EMPTY).all():
        out += keys[TEXT_BANDS:]
    return out


def band_keys(signature: SigLike) -> list[int]:
    """The article's LSH keys (distinct, non-zero, each < 2**54): store them in an indexed
    column; two articles are candidates for the same story when they share one."""
    return sorted(_row_keys(_as_bytes(signature)))


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """An article already placed in a story, as storage holds it."""

    article_id: int
    story_id: int
    signature: bytes | Signature
    published: datetime


@dataclass(frozen=True, slots=True)
class StoryDecision:
    """Where a new article goes. A new story's id is the id of its first article."""

    article_id: int
    story_id: int
    joined: bool  # False: the article starts a new story (story_id == article_id)
    matched_article_id: int | None = None  # the stored article it is a copy/rewrite of
    evidence: Evidence | None = None  # how they compare (None for a new story)

    @property
    def similarity(self) -> float:
        return self.evidence.text if self.evidence else 0.0


def _rank(sig: Signature, blobs: list[bytes], limit: int) -> list[int]:
    """Indices of the ``limit`` candidates whose sketches agree most with ``sig``."""
    text, terms, _ = _sketches(blobs)
    score = (text == sig.text).sum(axis=1) * 4 + (terms == sig.terms).sum(axis=1)
    order = np.argsort(-score, kind="stable")
    return order[:limit].tolist()


def decide(
    article_id: int,
    signature: SigLike,
    published: datetime,
    candidates: Iterable[StoredArticle],
    *,
    window: timedelta = DEFAULT_WINDOW,
) -> StoryDecision:
    """The story of a new article, given stored articles that share an LSH key with it.

    Deterministic in the *set* of candidates (their order does not matter): those outside
    ``window`` of ``published`` are ignored; the ``MAX_VERIFY`` most similar by sketch are
    compared in full; the article joins the story of the best that passes the rule (highest
    text similarity, then facts, then the earliest published, then the lowest id), or else
    starts its own.
    """
    sig = _as_sig(signature)
    t0 = _epoch(published)
    span = window.total_seconds()
    pool = sorted(
        (
            c
            for c in candidates
            if c.article_id != article_id and abs(_epoch(c.published) - t0) <= span
        ),
        key=lambda c: c.article_id,
    )
    if not pool:
        return StoryDecision(article_id, article_id, False)
    blobs = [_as_bytes(c.signature) for c in pool]
    best: tuple[tuple[float, float, float, int], StoredArticle, Evidence] | None = None
    for i in _rank(sig, blobs, MAX_VERIFY):
        cand = pool[i]
        ev = compare(sig, published, _as_sig(blobs[i]), cand.published)
        if not ev.joins:
            continue
        key = (-ev.text, -(ev.facts or 0.0), _epoch(cand.published), cand.article_id)
        if best is None or key < best[0]:
            best = (key, cand, ev)
    if best is None:
        return StoryDecision(article_id, article_id, False)
    _, cand, ev = best
    return StoryDecision(article_id, cand.story_id, True, cand.article_id, ev)


class StoryIndex:
    """The articles of the last ``window`` in memory, for :func:`decide` without SQL.

    ``add`` decides and records; ``insert`` records an article decided elsewhere (another
    daemon's row, or a story id storage reconciled). Not thread-safe: one owner (the
    daemon runs it in a worker thread or process, off the event loop).
    """

    def __init__(self, window: timedelta = DEFAULT_WINDOW) -> None:
        self.window = window
        self._cap = 0
        self._n = 0  # slots used (alive or dead)
        self._alive_count = 0
        self._article = np.zeros(0, dtype=np.int64)
        self._story = np.zeros(0, dtype=np.int64)
        self._published = np.zeros(0, dtype=np.float64)
        self._alive = np.zeros(0, dtype=bool)
        self._blobs: list[bytes | None] = []
        self._slot_of: dict[int, int] = {}  # article id -> slot
        self._keys = np.zeros(0, dtype=np.uint64)  # sorted
        self._key_slots = np.zeros(0, dtype=np.int32)
        self._pending: dict[int, list[int]] = {}  # recent keys, not yet in the sorted arrays
        self._pending_keys: list[int] = []
        self._pending_slots: list[int] = []

    # --- bookkeeping ------------------------------------------------------------------

    def __len__(self) -> int:
        return self._alive_count

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._slot_of

    def story_of(self, article_id: int) -> int | None:
        slot = self._slot_of.get(article_id)
        return None if slot is None else int(self._story[slot])

    def memory_bytes(self) -> int:
        """Bytes held by the index's arrays and signatures (not Python's dict overhead)."""
        arrays = (
            self._article,
            self._story,
            self._published,
            self._alive,
            self._keys,
            self._key_slots,
        )
        blobs = sum(len(b) + 33 for b in self._blobs if b is not None)
        pending = len(self._pending_keys) * 16 + len(self._pending) * 100
        return sum(a.nbytes for a in arrays) + blobs + pending + len(self._slot_of) * 100

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(1024, need, self._cap * 2)
        for name, dtype in (
            ("_article", np.int64),
            ("_story", np.int64),
            ("_published", np.float64),
            ("_alive", bool),
        ):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)
        self._cap = cap

    # --- LSH ----------------------------------------------------------------------------

    def _merge_pending(self) -> None:
        if not self._pending_keys:
            return
        keys = np.array(self._pending_keys, dtype=np.uint64)
        slots = np.array(self._pending_slots, dtype=np.int32)
        order = np.argsort(keys, kind="stable")
        keys, slots = keys[order], slots[order]
        at = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, at, keys)
        self._key_slots = np.insert(self._key_slots, at, slots)
        self._pending.clear()
        self._pending_keys.clear()
        self._pending_slots.clear()

    def _lookup(self, keys: list[int]) -> dict[int, int]:
        """Alive slots sharing keys with the query -> how many keys they share."""
        hits: dict[int, int] = {}
        if len(self._keys) and keys:
            q = np.array(keys, dtype=np.uint64)
            lo = np.searchsorted(self._keys, q, "left")
            hi = np.searchsorted(self._keys, q, "right")
            found = np.flatnonzero(hi > lo)
            for i in found.tolist():
                for slot in self._key_slots[lo[i] : hi[i]].tolist():
                    hits[slot] = hits.get(slot, 0) + 1
        pending = self._pending
        if pending:
            for k in keys:
                for slot in pending.get(k, ()):
                    hits[slot] = hits.get(slot, 0) + 1
        alive = self._alive
        return {slot: c for slot, c in hits.items() if alive[slot]}

    # --- the public operations ---------------------------------------------------------

    def candidates(self, signature: SigLike, published: datetime) -> list[StoredArticle]:
        """Stored articles within the window that share an LSH key with ``signature``."""
        return self._candidates(_row_keys(_as_bytes(signature)), _epoch(published))

    def _candidates(self, keys: list[int], t0: float) -> list[StoredArticle]:
        span = self.window.total_seconds()
        out: list[StoredArticle] = []
        for s in sorted(self._lookup(keys)):
            pub = float(self._published[s])
            if abs(pub - t0) <= span:
                blob = self._blobs[s]
                assert blob is not None
                out.append(
                    StoredArticle(
                        int(self._article[s]),
                        int(self._story[s]),
                        blob,
                        datetime.fromtimestamp(pub, UTC),
                    )
                )
        return out

    def decide(self, article_id: int, signature: SigLike, published: datetime) -> StoryDecision:
        """The story the article would join, without recording it."""
        return self._decide(article_id, _as_bytes(signature), published)[0]

    def _decide(
        self, article_id: int, blob: bytes, published: datetime
    ) -> tuple[StoryDecision, list[int] | None]:
        slot = self._slot_of.get(article_id)
        if slot is not None:
            story = int(self._story[slot])
            return StoryDecision(article_id, story, story != article_id), None
        check_bytes(blob)
        keys = _row_keys(blob)
        cands = self._candidates(keys, _epoch(published))
        return decide(article_id, blob, published, cands, window=self.window), keys

    def add(self, article_id: int, signature: SigLike, published: datetime) -> StoryDecision:
        """Decide the article's story and record it (adding the same id again is a no-op)."""
        blob = _as_bytes(signature)
        decision, keys = self._decide(article_id, blob, published)
        if keys is not None:
            self._insert(article_id, decision.story_id, blob, published, keys)
        return decision

    def insert(
        self, article_id: int, story_id: int, signature: SigLike, published: datetime
    ) -> None:
        """Record an article whose story is already decided (a stored row); recording a known
        id again updates its story (e.g. after storage reconciled two daemons' decisions)."""
        slot = self._slot_of.get(article_id)
        if slot is not None:
            self._story[slot] = story_id
            return
        blob = _as_bytes(signature)
        check_bytes(blob)
        self._insert(article_id, story_id, blob, published, _row_keys(blob))

    def _insert(
        self, article_id: int, story_id: int, blob: bytes, published: datetime, keys: list[int]
    ) -> None:
        slot = self._n
        if slot >= self._cap:
            self._grow(slot + 1)
        self._n += 1
        self._alive_count += 1
        self._article[slot] = article_id
        self._story[slot] = story_id
        self._published[slot] = _epoch(published)
        self._alive[slot] = True
        self._blobs.append(blob)
        self._slot_of[article_id] = slot
        pending = self._pending
        for k in keys:
            lst = pending.get(k)
            if lst is None:
                pending[k] = [slot]
            else:
                lst.append(slot)
        self._pending_keys.extend(keys)
        self._pending_slots.extend([slot] * len(keys))
        if len(self._pending_keys) >= _MERGE_KEYS:
            self._merge_pending()

    def evict(self, older_than: datetime) -> int:
        """Forget articles published before ``older_than``; returns how many."""
        t = _epoch(older_than)
        n = self._n
        gone = np.flatnonzero(self._alive[:n] & (self._published[:n] < t))
        if not len(gone):
            return 0
        self._alive[gone] = False
        for s in gone.tolist():
            self._blobs[s] = None
            del self._slot_of[int(self._article[s])]
        self._alive_count -= len(gone)
        if self._n - self._alive_count > max(1024, self._alive_count // 2):
            self._compact()
        return len(gone)

    def _compact(self) -> None:
        """Drop dead slots: renumber the living ones and filter the LSH arrays."""
        self._merge_pending()
        n = self._n
        alive = self._alive[:n]
        new_slot = np.cumsum(alive) - 1
        keep = alive[self._key_slots]
        self._keys = self._keys[keep]
        self._key_slots = new_slot[self._key_slots[keep]].astype(np.int32)
        idx = np.flatnonzero(alive)
        m = len(idx)
        self._article = self._article[idx].copy()
        self._story = self._story[idx].copy()
        self._published = self._published[idx].copy()
        self._alive = np.ones(m, dtype=bool)
        self._blobs = [self._blobs[i] for i in idx.tolist()]
        self._slot_of = {int(a): i for i, a in enumerate(self._article.tolist())}
        self._n = self._cap = m

    @classmethod
    def rebuild(
        cls,
        rows: Iterable[tuple[int, int, bytes, datetime]],
        *,
        window: timedelta = DEFAULT_WINDOW,
    ) -> StoryIndex:
        """An index of stored ``(article_id, story_id, signature, published)`` rows, built in
        bulk (one sort), e.g. the window's articles at start-up."""
        idx = cls(window)
        arts: list[int] = []
        stories: list[int] = []
        blobs: list[bytes] = []
        pubs: list[float] = []
        for article_id, story_id, sig, published in rows:
            if article_id in idx._slot_of:
                continue
            blob = _as_bytes(sig)
            try:
                check_bytes(blob)
            except SignatureError as e:
                raise SignatureError(f"article {article_id}: {e}") from None
            idx._slot_of[article_id] = len(arts)
            arts.append(article_id)
            stories.append(story_id)
            blobs.append(blob)
            pubs.append(_epoch(published))
        n = len(arts)
        if not n:
            return idx
        text, terms, _ = _sketches(blobs)
        keys = _keys_matrix(text, terms)
        slots = np.repeat(np.arange(n, dtype=np.int32), BANDS)
        flat = keys.reshape(-1)
        nz = flat != 0
        flat, slots = flat[nz], slots[nz]
        order = np.argsort(flat, kind="stable")
        idx._keys, idx._key_slots = flat[order], slots[order]
        idx._article = np.array(arts, dtype=np.int64)
        idx._story = np.array(stories, dtype=np.int64)
        idx._published = np.array(pubs, dtype=np.float64)
        idx._alive = np.ones(n, dtype=bool)
        idx._blobs = list(blobs)
        idx._n = idx._cap = idx._alive_count = n
        return idx
