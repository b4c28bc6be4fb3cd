"""Extraction quality on trafilatura's evaluation set: feedwatch against trafilatura itself.

    python bench/extract_eval.py PATH [--jobs 2] [--limit N] [--list-emptied] [--set NAME=VALUE]

PATH is the ``tests/`` folder of a checkout of https://github.com/adbar/trafilatura (it holds
``evaldata.json`` and the pages under ``eval/`` and ``cache/``), or the ``evaldata.json`` file
itself. The data is not part of feedwatch and is not on PyPI (the sdist leaves it out): clone the
repository and point this script at it. Nothing from that repository is copied here.

Scoring follows trafilatura's own evaluation: every page has snippets that must be in the
extracted text ("with") and snippets that must not ("without"). After collapsing whitespace, a
"with" snippet found is a true positive, else a false negative; a "without" snippet found is a
false positive, else a true negative. A page with no text (or an error) finds nothing.
Precision, recall and F1 are computed over the counts of all pages.

Rows: feedwatch's ``extract_article`` (the pipeline's call: no page metadata, no feed title),
trafilatura with default options, trafilatura's benchmark settings with and without its fallback
extractors (``include_comments=False, include_tables=True, include_formatting=False``), and
trafilatura called with feedwatch's own options (its fast path and pruning rules, no retry).
"Emptied" counts pages where feedwatch returns no text while trafilatura (defaults or benchmark
settings) returns some. The seconds column is CPU time inside the workers, summed per row.
``--set THIN_TEXT=500`` (repeatable) changes one of ``monitor/extract.py``'s numeric constants
for the run, to see what each rule is worth.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FEEDWATCH = "feedwatch extract_article"
TF_DEFAULT = "trafilatura defaults"
TF_BENCH = "trafilatura benchmark settings, with fallbacks"
TF_FAST = "trafilatura benchmark settings, fast (no fallbacks)"
TF_FW = "trafilatura with feedwatch's options (one pass)"
ROWS = [FEEDWATCH, TF_DEFAULT, TF_BENCH, TF_FAST, TF_FW]
BENCH_OPTS: dict[str, Any] = {
    "include_comments": False,
    "include_tables": True,
    "include_formatting": False,
}
TARGET_F1 = 0.926


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _feedwatch(html: bytes, url: str) -> str:
    from monitor.extract import ExtractError, extract_article

    try:
        return extract_article(html, url).text
    except ExtractError:
        return ""


def trafilatura_with_feedwatch_options(html: bytes, url: str) -> str:
    """trafilatura called once with the options feedwatch passes it (no pruning, no retry).

    Also the "trafilatura with feedwatch's options" row of ``bench/fetch.py``'s extraction stage.
    """
    import trafilatura

    from monitor import extract

    doc = trafilatura.bare_extraction(html, **extract.trafilatura_options(fast=True))
    if doc is None or doc.body is None:
        return ""
    # feedwatch asks for links only to weigh them; plain text, as trafilatura gives without them
    from lxml.etree import strip_tags
    from trafilatura.xml import xmltotxt

    strip_tags(doc.body, "ref")
    return xmltotxt(doc.body, False).strip()


def _runners() -> dict[str, Callable[[bytes, str], str]]:
    import trafilatura

    return {
        FEEDWATCH: _feedwatch,
        TF_DEFAULT: lambda h, u: trafilatura.extract(h) or "",
        TF_BENCH: lambda h, u: trafilatura.extract(h, fast=False, **BENCH_OPTS) or "",
        TF_FAST: lambda h, u: trafilatura.extract(h, fast=True, **BENCH_OPTS) or "",
        TF_FW: trafilatura_with_feedwatch_options,
    }


def _override(settings: dict[str, float]) -> None:
    """Pool initializer: set monitor.extract's constants for this run."""
    from monitor import extract

    for name, value in settings.items():
        setattr(extract, name, value)


def _parse_set(item: str) -> tuple[str, float]:
    name, _, value = item.partition("=")
    from monitor import extract

    if not name.isupper() or not isinstance(getattr(extract, name, None), int | float):
        raise argparse.ArgumentTypeError(f"{name!r} is not a numeric constant of monitor.extract")
    try:
        return name, float(value) if "." in value else int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{item!r}: the value must be a number") from None


def score_page(item: dict[str, Any], text: str) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of one page."""
    t = norm(text)
    tp = sum(1 for w in item["with"] if norm(w) in t)
    fp = sum(1 for w in item["without"] if norm(w) in t)
    return tp, fp, len(item["with"]) - tp, len(item["without"]) - fp


def run_page(job: tuple[str, dict[str, Any], bytes, list[str]]) -> dict[str, Any]:
    """All rows on one page, in a worker: per row the counts, the text length and CPU seconds."""
    url, item, html, rows = job
    runners = _runners()
    out: dict[str, Any] = {"url": url, "rows": {}}
    for name in rows:
        t0 = time.process_time()
        try:
            text = runners[name](html, url)
            error = None
        except Exception as exc:  # a crash scores as finding nothing, as in trafilatura's eval
            text, error = "", f"{type(exc).__name__}: {exc}"
        dt = time.process_time() - t0
        out["rows"][name] = {
            "counts": score_page(item, text),
            "chars": len(text.strip()),
            "seconds": dt,
            "error": error,
        }
    return out


@dataclass
class Totals:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    seconds: float = 0.0
    empty: int = 0
    errors: int = 0

    def scores(self) -> tuple[float, float, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0
        return p, r, f1


def load(path: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """(folder holding eval/ and cache/, annotations); a clear error when the path is wrong."""
    if path.is_dir():
        if (path / "tests" / "evaldata.json").is_file():
            path = path / "tests"
        path = path / "evaldata.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (give trafilatura's tests/ folder)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {path}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise SystemExit(f"error: {path}: expected a JSON object of annotated pages")
    for url, item in data.items():
        if not (
            isinstance(item, dict)
            and isinstance(item.get("file"), str)
            and all(isinstance(item.get(k), list) for k in ("with", "without"))
        ):
            raise SystemExit(f"error: {path}: {url}: needs 'file', 'with' and 'without'")
    return path.parent, data


def read_page(folder: Path, name: str) -> bytes | None:
    for sub in ("cache", "eval"):
        p = folder / sub / name
        if p.is_file():
            return p.read_bytes()
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="trafilatura's tests/ folder (or its evaldata.json)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pages (sorted by URL)")
    ap.add_argument("--rows", default="all", help="comma-separated row numbers 1-5, or all")
    ap.add_argument("--list-emptied", action="store_true", help="print the emptied pages' URLs")
    ap.add_argument("--dump", type=Path, help="write per-page results (JSON lines) here")
    ap.add_argument(
        "--set",
        type=_parse_set,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a numeric constant of monitor/extract.py (e.g. THIN_TEXT=500)",
    )
    args = ap.parse_args()
    try:
        picked = range(1, len(ROWS) + 1) if args.rows == "all" else map(int, args.rows.split(","))
        rows = [ROWS[i - 1] for i in picked if i >= 1]
    except (ValueError, IndexError):
        ap.error(f"--rows: numbers from 1 to {len(ROWS)}, comma-separated, or all")
    if not rows:
        ap.error(f"--rows: numbers from 1 to {len(ROWS)}, comma-separated, or all")

    folder, data = load(args.data)
    jobs, missing = [], []
    for url in sorted(data)[: args.limit or None]:
        html = read_page(folder, data[url]["file"])
        if html is None:
            missing.append(data[url]["file"])
            continue
        jobs.append((url, data[url], html, rows))
    if missing:
        print(f"warning: {len(missing)} page files not found, e.g. {missing[0]}", file=sys.stderr)

    t0 = time.perf_counter()
    with ProcessPoolExecutor(
        max(1, args.jobs), initializer=_override, initargs=(dict(args.set),)
    ) as ex:
        results = list(ex.map(run_page, jobs, chunksize=4))
    wall = time.perf_counter() - t0

    totals = {name: Totals() for name in rows}
    emptied: list[str] = []
    for res in results:
        for name, r in res["rows"].items():
            t = totals[name]
            tp, fp, fn, tn = r["counts"]
            t.tp, t.fp, t.fn, t.tn = t.tp + tp, t.fp + fp, t.fn + fn, t.tn + tn
            t.seconds += r["seconds"]
            t.empty += r["chars"] == 0
            t.errors += r["error"] is not None
        fw = res["rows"].get(FEEDWATCH)
        kept = [res["rows"][n]["chars"] > 0 for n in (TF_DEFAULT, TF_BENCH) if n in res["rows"]]
        if fw is not None and fw["chars"] == 0 and any(kept):
            emptied.append(res["url"])
    if args.dump:
        with args.dump.open("w", encoding="utf-8") as f:
            for res in results:
                f.write(json.dumps(res) + "\n")

    n_with = sum(len(j[1]["with"]) for j in jobs)
    n_without = sum(len(j[1]["without"]) for j in jobs)
    print(
        f"{len(jobs)} pages ({n_with} 'with' and {n_without} 'without' snippets); "
        f"{args.jobs} worker processes, {wall:.0f} s wall time"
    )
    if args.set:
        print("monitor.extract overrides: " + ", ".join(f"{k}={v}" for k, v in args.set))
    print()
    print("| extractor | F1 | precision | recall | TP | FP | FN | empty pages | CPU s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in rows:
        t = totals[name]
        p, r, f1 = t.scores()
        print(
            f"| {name} | {f1:.4f} | {p:.4f} | {r:.4f} | {t.tp} | {t.fp} | {t.fn} | "
            f"{t.empty} | {t.seconds:.1f} |"
        )
    print()
    if FEEDWATCH in totals:
        f1 = totals[FEEDWATCH].scores()[2]
        print(
            f"feedwatch F1 {f1:.4f}: target >= {TARGET_F1} {'met' if f1 >= TARGET_F1 else 'NOT met'}"
        )
        if TF_DEFAULT in totals or TF_BENCH in totals:
            print(f"pages emptied by feedwatch that trafilatura keeps: {len(emptied)}")
        else:
            print("pages emptied by feedwatch that trafilatura keeps: not counted (rows 2, 3)")
        if args.list_emptied:
            for url in emptied:
                print(f"  {url}")
    for name in rows:
        if totals[name].errors:
            print(f"{name}: {totals[name].errors} pages raised an error (scored as empty)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
