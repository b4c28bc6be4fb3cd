"""Feed parsing benchmark: ``parse_feed`` against the plain feedparser path, in the same run.

    python bench/parse.py [--feeds 1000] [--repeat 5] [--sets bench,accented,cp1252,corpus]
                          [--against OLD_PARSE_PY]

Sets of feed bodies, all in memory (no HTTP):

- ``bench``: the fetch benchmark's feeds (``bench/feedserver.py``: RSS 2.0, 20 items, ~10 KB,
  ASCII), which its first pass parses.
- ``accented``: the same feeds with non-ASCII text in every title and description (accents,
  typographic quotes, a Cyrillic word), UTF-8: every field then goes through the charset and
  mojibake checks.
- ``cp1252``: the accented feeds in windows-1252, labelled in the XML prolog.
- ``corpus``: tests/feedcorpus.py, 400 generated feeds of 13 encodings and 7 shapes (most of them
  are not plain RSS 2.0 and go to feedparser on both sides).

For each set: feeds/s of ``parse_feed`` and of the feedparser path (``_parse_xml_feed(fast=False)``:
what parse_feed does without the lxml fast path) and their ratio; with ``--against``, also the
``parse_feed`` of another version of monitor/parse.py (``git show REV:monitor/parse.py >
/tmp/parse_old.py``), loaded into the same process. Passes are interleaved and the best of
``--repeat`` is kept, so every number in a row saw the same machine load; times are this
process's CPU time (parsing does no I/O), which waiting for a busy core does not inflate.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import feedserver  # noqa: E402

from monitor.parse import _parse_xml_feed, parse_feed  # noqa: E402

NOW = datetime.now(UTC)
URL = "http://127.0.0.1:8080/feed/0.xml"
ACCENTS = [
    ("Story ", "História "),
    (" from ", " — from "),
    ("council", "conseil municipal"),
    ("budget", "budget “été”"),
    ("river", "rivière"),
    ("market", "Märkte"),
    ("school", "escola ’s"),
    ("station", "станция"),
    ("&lt;p&gt;", "&lt;p&gt;Ça va… "),
]
Bodies = list[tuple[bytes, str]]
Run = Callable[[bytes, str], int]


def bench_bodies(n: int) -> Bodies:
    site = feedserver.Site(8080)
    return [(site.feed(i), "application/rss+xml") for i in range(n)]


def accented(bodies: Bodies, encoding: str) -> Bodies:
    out = []
    for body, ctype in bodies:
        text = body.decode()
        for old, new in ACCENTS:
            text = text.replace(old, new)
        if encoding != "utf-8":
            text = text.replace('encoding="utf-8"', f'encoding="{encoding}"')
            text = text.replace("станция", "estação")  # not in windows-1252
        out.append((text.encode(encoding), ctype))
    return out


def corpus_bodies() -> Bodies:
    from tests.feedcorpus import corpus

    return [(c.body, c.content_type) for c in corpus(400, seed=14)]


def load_parse_feed(path: str) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location("parse_against", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_feed  # type: ignore[no-any-return]


def counter(parse: Callable[[bytes, str], Any]) -> Run:
    """A parse function -> entries parsed, or -1 when it rejects the body as not a feed."""

    def run(body: bytes, ctype: str) -> int:
        try:
            return len(parse(body, ctype).entries)
        except Exception as exc:  # NotAFeed, of this version or of the one --against loads
            if type(exc).__name__ == "NotAFeed":
                return -1
            raise

    return run


def best_times(runs: dict[str, Run], bodies: Bodies, repeat: int) -> dict[str, float]:
    """Best CPU time per contender over ``repeat`` interleaved passes over every body (the order
    of contenders rotates from pass to pass, so none always runs first)."""
    best = dict.fromkeys(runs, float("inf"))
    names = list(runs)
    for i in range(repeat):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            run = runs[name]
            start = time.process_time()
            for body, ctype in bodies:
                run(body, ctype)
            best[name] = min(best[name], time.process_time() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description="feed parsing benchmark (no network)")
    ap.add_argument("--feeds", type=int, default=1000, help="feeds per generated set")
    ap.add_argument("--repeat", type=int, default=5, help="passes per measurement (best is kept)")
    ap.add_argument("--sets", default="bench,accented,cp1252,corpus")
    ap.add_argument("--against", help="another version of monitor/parse.py to time alongside")
    args = ap.parse_args()
    if args.feeds < 1 or args.repeat < 1:
        ap.error("--feeds and --repeat must be at least 1")
    runs = {
        "parse_feed": counter(lambda b, c: parse_feed(b, URL, c, now=NOW)),
        "feedparser": counter(lambda b, c: _parse_xml_feed(b, URL, c, NOW, fast=False)),
    }
    if args.against:
        old = load_parse_feed(args.against)
        runs["against"] = counter(lambda b, c: old(b, URL, c, now=NOW))
    base = bench_bodies(args.feeds)
    makers: dict[str, Callable[[], Bodies]] = {
        "bench": lambda: base,
        "accented": lambda: accented(base, "utf-8"),
        "cp1252": lambda: accented(base, "windows-1252"),
        "corpus": corpus_bodies,
    }
    print(f"python {platform.python_version()}, {platform.machine()}, repo {ROOT}")
    head = f"{'set':<10}{'feeds':>6}{'entries':>8}{'rejected':>9}{'parse_feed/s':>13}"
    head += f"{'feedparser/s':>13}{'ratio':>7}"
    if args.against:
        print(f"against: {args.against}")
        head += f"{'against/s':>10}{'rejected':>9}{'new/against':>12}"
    print(head)
    for name in args.sets.split(","):
        if name not in makers:
            ap.error(f"unknown set {name!r}: choose from {', '.join(makers)}")
        bodies = makers[name]()
        counts = [runs["parse_feed"](b, c) for b, c in bodies]
        t = best_times(runs, bodies, args.repeat)
        n = len(bodies)
        row = f"{name:<10}{n:>6}{sum(c for c in counts if c > 0):>8}{counts.count(-1):>9}"
        row += f"{n / t['parse_feed']:>13.0f}{n / t['feedparser']:>13.0f}"
        row += f"{t['feedparser'] / t['parse_feed']:>6.1f}x"
        if args.against:
            rejected = [runs["against"](b, c) for b, c in bodies].count(-1)
            row += f"{n / t['against']:>10.0f}{rejected:>9}{t['against'] / t['parse_feed']:>11.2f}x"
        print(row)


if __name__ == "__main__":
    main()
