"""Story clustering benchmark: quality on the labelled set, speed and memory at 100k stories.

    python bench/stories.py                 # both parts (about 3-5 minutes on 2 cores)
    python bench/stories.py --quality-only  # the labelled set only (seconds)
    python bench/stories.py --stories 20000 # a quicker speed run

Quality: every article of ``tests/data/stories/`` is fed in publication order to
feedwatch's ``StoryIndex`` and to the baseline, plain MinHash: datasketch ``MinHashLSH``
over the same word 3-shingles (128 permutations, default SHA-1 hashing of the shingle
strings) joining the most similar earlier article in the window when its estimated Jaccard
reaches a fixed threshold (0.3, 0.5 and 0.7 are run; the best is the baseline). Pairwise
and B-cubed precision/recall/F1 against the gold stories, for all articles, for the ``dev``
files (the thresholds were set on them) and the ``heldout`` files, with the 48 h window and
with a 10-day window (which puts the week-later events in reach), plus how many hard-negative
pairs (different events that look alike) each method merged.

Speed: synthetic articles (deterministic from ``--seed``; Zipf-distributed pseudo-words,
capitalised names, numbers, ~1.5 KB; fingerprints computed in a process pool) fill the index
to ``--stories``; then ``--probe`` more articles, half near-copies of indexed ones (a
paragraph dropped, a number changed, a new title) and half new, are joined one by one:
microseconds per join against ``MinHashLSH`` query + verify + insert on the same articles.
Also: fingerprint cost per 5 KB article (vs a plain datasketch MinHash of the same text),
rebuild time from stored rows, eviction, and memory (tracemalloc) of both indexes.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from datasketch import MinHash, MinHashLSH

from monitor.stories import StoryIndex, fingerprint
from monitor.stories.features import words
from monitor.stories.signature import shingle_hashes
from tests.storyset import Group, LabelledArticle, Scores, articles, load, score

NUM_PERM = 128
BASELINE_THRESHOLDS = (0.3, 0.5, 0.7)
WINDOWS = {"48h": timedelta(hours=48), "10d": timedelta(days=10)}

# --- quality --------------------------------------------------------------------------------


def baseline_minhash(text: str) -> MinHash:
    """Plain MinHash of the word 3-shingles, as the datasketch docs do it (SHA-1 per shingle)."""
    w = words(text)
    shingles = {" ".join(w[i : i + 3]).encode() for i in range(max(1, len(w) - 2))}
    m = MinHash(num_perm=NUM_PERM)
    m.update_batch(list(shingles))
    return m


def run_baseline(
    arts: list[LabelledArticle], threshold: float, window: timedelta
) -> dict[str, object]:
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    seen: dict[str, tuple[MinHash, datetime, str]] = {}
    story: dict[str, object] = {}
    for a in arts:
        m = baseline_minhash(a.text)
        best: tuple[float, str] | None = None
        for key in lsh.query(m):
            om, pub, st = seen[key]
            if abs(a.published - pub) > window:
                continue
            j = m.jaccard(om)
            if j >= threshold and (best is None or j > best[0]):
                best = (j, st)
        story[a.id] = best[1] if best else a.id
        seen[a.id] = (m, a.published, str(story[a.id]))
        lsh.insert(a.id, m)
    return story


def run_feedwatch(arts: list[LabelledArticle], window: timedelta) -> dict[str, object]:
    index = StoryIndex(window)
    ids = {a.id: i for i, a in enumerate(arts)}
    story: dict[str, object] = {}
    for a in arts:
        d = index.add(ids[a.id], fingerprint(a.title, a.text), a.published)
        story[a.id] = d.story_id
    return story


def hard_negative_merges(groups: list[Group], predicted: dict[str, object]) -> Counter[str]:
    """Hard-negative article pairs (different events that look alike) put in one story."""
    by_story = {g.story: g for g in groups}
    out: Counter[str] = Counter()
    for g in groups:
        if not g.hard_negative_of:
            continue
        other = by_story[g.hard_negative_of]
        for a in g.articles:
            for b in other.articles:
                if predicted.get(a.id) == predicted.get(b.id) and a.id in predicted:
                    out[g.negative_kind or "?"] += 1
    return out


def fmt(s: Scores) -> str:
    return (
        f"P {s.pair_precision:.3f} R {s.pair_recall:.3f} F1 {s.pair_f1:.3f} | "
        f"B3 P {s.bcubed_precision:.3f} R {s.bcubed_recall:.3f} F1 {s.bcubed_f1:.3f}"
    )


def quality() -> None:
    groups = load()
    arts = articles(groups)
    gold = {a.id: a.story for a in arts}
    print(
        f"labelled set: {len(groups)} stories, {len(arts)} articles, languages "
        f"{dict(Counter(a.lang for a in arts))}, hard-negative stories "
        f"{dict(Counter(g.negative_kind for g in groups if g.negative_kind))}"
    )
    for wname, window in WINDOWS.items():
        print(f"\n== window {wname} ==")
        ours = run_feedwatch(arts, window)
        base = {t: run_baseline(arts, t, window) for t in BASELINE_THRESHOLDS}
        for split in ("all", "dev", "heldout"):
            ids = [a.id for a in arts if split == "all" or a.split == split]
            g = {i: gold[i] for i in ids}
            s_ours = score(g, {i: ours[i] for i in ids})
            s_base = {t: score(g, {i: base[t][i] for i in ids}) for t in BASELINE_THRESHOLDS}
            best_t = max(BASELINE_THRESHOLDS, key=lambda t: s_base[t].bcubed_f1)
            print(f"[{split}, {len(ids)} articles]")
            print(f"  feedwatch            {fmt(s_ours)}")
            for t in BASELINE_THRESHOLDS:
                mark = "  <- best baseline" if t == best_t else ""
                print(f"  minhash J>={t:<4}       {fmt(s_base[t])}{mark}")
            b = s_base[best_t]
            print(
                f"  ratio vs best baseline: pairwise F1 {s_ours.pair_f1 / max(b.pair_f1, 1e-9):.2f}x, "
                f"B-cubed F1 {s_ours.bcubed_f1 / max(b.bcubed_f1, 1e-9):.2f}x"
            )
        print(
            "  hard-negative pairs merged (feedwatch):",
            dict(hard_negative_merges(groups, ours)) or "none",
        )
        for t in BASELINE_THRESHOLDS:
            print(
                f"  hard-negative pairs merged (minhash {t}):",
                dict(hard_negative_merges(groups, base[t])) or "none",
            )
        kinds = Counter(a.kind for a in arts)
        missed: Counter[str] = Counter()
        for a, b in combinations(arts, 2):
            if a.story == b.story and ours[a.id] != ours[b.id]:
                missed[b.kind] += 1
        print(
            f"  same-story pairs split by feedwatch, by the later article's kind: {dict(missed) or 'none'} (articles by kind: {dict(kinds)})"
        )


# --- synthetic articles ----------------------------------------------------------------------

SYL = "ba ko ri ma te lu sen dor vik pal mur ten gal ris fo ne ta li quo zan bre ost".split()


def _vocab(rng: random.Random, n: int, capital: bool = False) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        w = "".join(rng.choice(SYL) for _ in range(rng.randint(1, 4)))
        out.add(w.capitalize() if capital else w)
    return sorted(out)


class Synth:
    """Deterministic pseudo-news: sentences of Zipf-distributed words, names and numbers."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.words = _vocab(rng, 30_000)
        self.names = _vocab(rng, 8_000, capital=True)
        ranks = np.arange(1, len(self.words) + 1)
        w = 1.0 / ranks
        self.cum = np.cumsum(w / w.sum())

    def sentence(self, rng: random.Random, n: int) -> str:
        idx = np.searchsorted(self.cum, [rng.random() for _ in range(n)])
        toks = [self.words[min(i, len(self.words) - 1)] for i in idx]
        for _ in range(2):
            toks[rng.randrange(1, n)] = rng.choice(self.names)
        if rng.random() < 0.6:
            toks[rng.randrange(1, n)] = f"{rng.randint(2, 9999):,}"
        return toks[0].capitalize() + " " + " ".join(toks[1:]) + "."

    def article(self, rng: random.Random, target_bytes: int) -> tuple[str, str]:
        paras: list[str] = []
        size = 0
        while size < target_bytes:
            p = " ".join(self.sentence(rng, rng.randint(10, 22)) for _ in range(rng.randint(2, 4)))
            paras.append(p)
            size += len(p) + 2
        title = self.sentence(rng, 9).rstrip(".")
        return title, "\n\n".join(paras)


def near_copy(rng: random.Random, title: str, text: str) -> tuple[str, str]:
    """A syndicated copy: new headline, last paragraph dropped, one number changed."""
    paras = text.split("\n\n")
    if len(paras) > 3:
        paras = paras[:-1]
    out = "\n\n".join(paras)
    nums = [t for t in out.split() if t[:1].isdigit()]
    if nums:
        out = out.replace(nums[0], str(rng.randint(2, 9999)), 1)
    return "Report: " + title.split(" ", 2)[-1], out


def _make(args: tuple[int, int, int, bool]) -> tuple[bytes, bytes, str, str]:
    seed, i, size, copy_of = args[0], args[1], args[2], args[3]
    synth = _SYNTH[seed]
    rng = random.Random(seed * 1_000_003 + i)
    title, text = synth.article(rng, size)
    if copy_of:
        title, text = near_copy(rng, title, text)
    sig = fingerprint(title, text)
    m = MinHash(num_perm=NUM_PERM, hashfunc=int)
    m.update_batch(shingle_hashes(words(text)).tolist())
    return sig.to_bytes(), m.hashvalues.tobytes(), title, text


_SYNTH: dict[int, Synth] = {}


def _init(seed: int) -> None:
    _SYNTH[seed] = Synth(seed)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def traced(fn: Callable[[], object]) -> tuple[int, object]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    out = fn()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, out


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]


def speed(n: int, probes: int, seed: int) -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    _init(seed)
    synth = _SYNTH[seed]

    # fingerprint cost, 5 KB articles, one process (CPU time)
    rng = random.Random(seed)
    docs = [synth.article(rng, 5000) for _ in range(300)]
    for title, text in docs[:5]:
        fingerprint(title, text)
    ours, base = [], []
    for title, text in docs:
        c = time.process_time()
        fingerprint(title, text)
        ours.append(time.process_time() - c)
        c = time.process_time()
        baseline_minhash(text)
        base.append(time.process_time() - c)
    avg = statistics.mean(len(t.encode()) for _, t in docs)
    print(
        f"fingerprint, {len(docs)} articles of {avg / 1000:.1f} KB: median {statistics.median(ours) * 1e6:.0f} us "
        f"(p99 {pct(ours, 0.99) * 1e6:.0f}); plain datasketch MinHash of the same text "
        f"{statistics.median(base) * 1e6:.0f} us (ratio {statistics.median(ours) / statistics.median(base):.2f}x)"
    )

    # the corpus: n indexed articles + probes (half copies of indexed ones)
    jobs = [(seed, i, 1500, False) for i in range(n)]
    prng = random.Random(seed + 1)
    copy_src = [prng.randrange(n) for _ in range(probes // 2)]
    jobs += [(seed, i, 1500, True) for i in copy_src]
    jobs += [(seed, n + probes + i, 1500, False) for i in range(probes - probes // 2)]
    print(f"building {len(jobs)} synthetic articles (~1.5 KB) in a process pool ...", flush=True)
    dt, made = timed(
        lambda: list(
            ProcessPoolExecutor(2, initializer=_init, initargs=(seed,)).map(
                _make, jobs, chunksize=500
            )
        )
    )
    print(f"  {dt:.1f} s")
    fill, probe = made[:n], made[n:]
    span = 40 * 3600  # every article within the 48 h window
    pubs = [t0 + timedelta(seconds=span * i / n) for i in range(n)]
    probe_pub = t0 + timedelta(seconds=span)
    sig_bytes = sum(len(s) for s, *_ in fill) / n
    print(f"signature size: mean {sig_bytes:.0f} bytes")

    # feedwatch: fill by add(), then probe
    index = StoryIndex()
    dt_fill, _ = timed(lambda: [index.add(i, fill[i][0], pubs[i]) for i in range(n)])
    lat: list[float] = []
    joined_copies = joined_new = 0
    for k, (sig, _, _, _) in enumerate(probe):
        c = time.perf_counter()
        d = index.add(n + k, sig, probe_pub)
        lat.append(time.perf_counter() - c)
        if k < len(copy_src):
            joined_copies += d.joined and d.story_id == index.story_of(copy_src[k])
        else:
            joined_new += d.joined

    # baseline: MinHashLSH, fill by insert, then probe (query + verify + insert)
    lsh = MinHashLSH(threshold=0.5, num_perm=NUM_PERM)
    mhs = [
        MinHash(num_perm=NUM_PERM, hashvalues=np.frombuffer(h, dtype=np.uint32), scheme="affine32")
        for _, h, *_ in fill
    ]
    dt_bfill, _ = timed(lambda: [lsh.insert(i, mhs[i]) for i in range(n)])
    blat: list[float] = []
    for k, (_, h, _, _) in enumerate(probe):
        m = MinHash(
            num_perm=NUM_PERM, hashvalues=np.frombuffer(h, dtype=np.uint32), scheme="affine32"
        )
        c = time.perf_counter()
        best = max(((m.jaccard(mhs[j]), j) for j in lsh.query(m) if j < n), default=None)
        lsh.insert(n + k, m)
        blat.append(time.perf_counter() - c)
        del best
    print(
        f"\n== {n:,} stories in the window; {len(probe)} probes ({len(copy_src)} copies, {len(probe) - len(copy_src)} new) =="
    )
    print(
        f"fill by add(): {dt_fill:.1f} s = {dt_fill / n * 1e6:.0f} us/article; MinHashLSH.insert: {dt_bfill / n * 1e6:.0f} us/article"
    )
    mean, med = statistics.mean(lat), statistics.median(lat)
    bmean, bmed = statistics.mean(blat), statistics.median(blat)
    print(
        f"join at {n:,}: feedwatch mean {mean * 1e6:.0f} us, median {med * 1e6:.0f}, p99 {pct(lat, 0.99) * 1e6:.0f} | "
        f"MinHashLSH query+verify+insert mean {bmean * 1e6:.0f} us, median {bmed * 1e6:.0f}, p99 {pct(blat, 0.99) * 1e6:.0f} "
        f"| ratio (mean) {mean / bmean:.2f}x"
    )
    print(
        f"copies joined to their source's story: {joined_copies}/{len(copy_src)}; new articles joined: {joined_new}/{len(probe) - len(copy_src)}"
    )

    # rebuild from stored rows, memory, eviction
    rows = [(i, int(index.story_of(i) or i), fill[i][0], pubs[i]) for i in range(n)]
    index = StoryIndex()
    lsh = MinHashLSH(threshold=0.5, num_perm=NUM_PERM)
    gc.collect()
    dt_rebuild, idx2 = timed(lambda: StoryIndex.rebuild(rows))
    # fresh bytes objects, as rows read from a database would be (rows above share them)
    mem, idx3 = traced(
        lambda: StoryIndex.rebuild((a, b, bytes(bytearray(c)), d) for a, b, c, d in rows)
    )
    assert isinstance(idx3, StoryIndex)
    del idx3
    gc.collect()

    def build_lsh() -> MinHashLSH:
        lsh = MinHashLSH(threshold=0.5, num_perm=NUM_PERM)
        for i, (_, h, *_rest) in enumerate(fill):
            lsh.insert(
                i,
                MinHash(
                    num_perm=NUM_PERM,
                    hashvalues=np.frombuffer(h, dtype=np.uint32),
                    scheme="affine32",
                ),
            )
        return lsh

    dt_brebuild, _ = timed(build_lsh)
    bmem, _ = traced(build_lsh)
    print(
        f"rebuild from {n:,} stored rows: {dt_rebuild:.2f} s (MinHashLSH from stored hash values: {dt_brebuild:.2f} s, "
        f"ratio {dt_rebuild / dt_brebuild:.2f}x)"
    )
    assert isinstance(idx2, StoryIndex)
    print(
        f"memory at {n:,}: feedwatch index, signatures included, {mem / 2**20:.1f} MB ({mem / n:.0f} B/article; "
        f"{idx2.memory_bytes() / 2**20:.1f} MB by its own estimate) | MinHashLSH with its MinHash objects "
        f"{bmem / 2**20:.1f} MB (ratio {mem / bmem:.2f}x)"
    )
    dt_evict, gone = timed(lambda: idx2.evict(t0 + timedelta(seconds=span / 2)))
    print(f"evict the older half: {gone} articles in {dt_evict * 1000:.0f} ms; {len(idx2):,} left")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stories", type=int, default=100_000)
    ap.add_argument("--probe", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quality-only", action="store_true")
    ap.add_argument("--speed-only", action="store_true")
    args = ap.parse_args()
    if not args.speed_only:
        quality()
    if not args.quality_only:
        print()
        speed(args.stories, args.probe, args.seed)


if __name__ == "__main__":
    main()
