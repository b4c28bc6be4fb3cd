"""Micro-benchmark of the sitemap and section-page parsers against the naive approaches.

    python bench/sources.py [--urls 50000] [--repeat 3]

1. ``parse_sitemap`` on a generated Google News sitemap of ``--urls`` URLs (titles, dates,
   keywords, image blocks; ~20 MB for 50,000), plain and gzip, against a naive full parse with
   ``xml.etree.ElementTree`` (the whole tree in memory, then the same fields read and the same
   dates parsed) and, for reference, the same with a full ``lxml.etree`` tree. Each contender runs
   in its own process, which reads the file before the clock starts; the time is the best of
   ``--repeat`` runs and the memory is the peak RSS above what the process held with the body
   loaded. The outputs are checked to be the same items.
2. ``find_article_links`` on the benchmark server's section page (200 articles, each linked by
   an image, a headline and "Read more", among navigation, a "most read" box, tags, authors,
   pagination and a footer) against the naive approach: every ``<a href>`` of an lxml tree,
   resolved and de-duplicated. Time is the best of 20 runs in one process; precision and recall
   are against the 200 article URLs the page was built with.

Prints the numbers and the ratios (naive / feedwatch: above 1 means feedwatch is faster or
smaller). No network is used.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
NEWS = "{http://www.google.com/schemas/sitemap-news/0.9}"


def make_sitemap(n: int) -> bytes:
    rows = []
    for i in range(n):
        when = NOW - timedelta(minutes=3 * i)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(
            f"<url><loc>https://news.example.org/world/{when:%Y/%m/%d}/council-approves-"
            f"budget-for-the-harbour-bridge-{400000 + i}.html?src=sm&amp;v=2</loc>"
            f"<lastmod>{stamp}</lastmod><news:news><news:publication><news:name>The Example "
            "Gazette</news:name><news:language>en</news:language></news:publication>"
            f"<news:publication_date>{stamp}</news:publication_date><news:title>Council "
            f"approves budget for the harbour bridge &amp; ferry, part {i}</news:title>"
            "<news:keywords>council, budget, harbour, bridge</news:keywords></news:news>"
            f"<image:image><image:loc>https://cdn.example.org/img/{i}.jpg</image:loc>"
            "<image:caption>The harbour at dusk</image:caption></image:image></url>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9" '
        'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">\n'
        + "".join(rows)
        + "</urlset>\n"
    ).encode()


# --------------------------------------------------------------------------- contenders


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _naive_items(root: Any) -> list[tuple[str, str, datetime | None]]:
    out = []
    seen = set()
    for url in root.iter(f"{SM}url"):
        loc = (url.findtext(f"{SM}loc") or "").strip()
        if not loc.startswith(("http://", "https://")) or loc in seen:
            continue
        seen.add(loc)
        title = url.findtext(f"{NEWS}news/{NEWS}title") or ""
        date = _date(url.findtext(f"{NEWS}news/{NEWS}publication_date"))
        out.append((loc, " ".join(title.split()), date or _date(url.findtext(f"{SM}lastmod"))))
    return out


def naive_etree(body: bytes) -> list[tuple[str, str, datetime | None]]:
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return _naive_items(ET.fromstring(body))


def naive_lxml(body: bytes) -> list[tuple[str, str, datetime | None]]:
    from lxml import etree

    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return _naive_items(etree.fromstring(body, etree.XMLParser(huge_tree=True)))


def feedwatch(body: bytes) -> list[tuple[str, str, datetime | None]]:
    from monitor.sitemap import parse_sitemap

    sm = parse_sitemap(body, "https://news.example.org/news-sitemap.xml", NOW)
    return [(e.url or "", e.title, e.published) for e in sm.entries]


CONTENDERS = {
    "feedwatch": feedwatch,
    "naive ElementTree": naive_etree,
    "naive lxml tree": naive_lxml,
}


def reset_peak_rss() -> None:
    """Start the peak-RSS count afresh (Linux: VmHWM, reset through clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss() -> int:
    """Peak RSS in bytes. Linux's ru_maxrss survives exec(), so a child spawned by a larger
    parent would report the parent's size: VmHWM belongs to this program alone."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(name: str, path: str, repeat: int) -> None:
    """Runs in its own process: one contender on one file; prints JSON."""
    import psutil

    fn = CONTENDERS[name]
    if name == "feedwatch":
        import monitor.sitemap  # noqa: F401  (imports before the baseline memory is taken)
    else:
        import lxml.etree  # noqa: F401
    body = Path(path).read_bytes()
    proc = psutil.Process()
    base = proc.memory_info().rss
    reset_peak_rss()
    items = fn(body)  # the first run, in a fresh process, measures memory
    peak = peak_rss()
    digest = hash(tuple(items))
    count = len(items)
    del items
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(body)
        times.append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "seconds": min(times),
                "peak_extra_mb": max(0, peak - base) / 1e6,
                "items": count,
                "digest": digest,
            }
        )
    )


def run_child(name: str, path: Path, repeat: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, str(path), "--repeat", str(repeat)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- section page


def naive_links(body: bytes, url: str) -> list[str]:
    from urllib.parse import urljoin

    from lxml import html

    root = html.document_fromstring(body)
    out: list[str] = []
    seen: set[str] = set()
    for a in root.iter("a"):
        href = a.get("href")
        if not href:
            continue
        absolute = urljoin(url, href).split("#", 1)[0]
        if absolute.startswith(("http://", "https://")) and absolute not in seen:
            seen.add(absolute)
            out.append(absolute)
    return out


def bench_page() -> dict[str, Any]:
    import feedserver

    from monitor.sectionpage import find_article_links
    from monitor.urls import canonical_url

    site = feedserver.Site(8080)
    body = site.front(7)
    url = "http://127.0.0.1:8080/front/7.html"
    truth = {
        canonical_url(f"http://127.0.0.1:8080/article/7/{k}-{feedserver.article_slug(k)}")
        for k in range(feedserver.FRONT_LINKS)
    }

    def best(fn: Any) -> tuple[float, list[str]]:
        times = []
        got: list[str] = []
        for _ in range(20):
            t = time.perf_counter()
            got = fn()
            times.append(time.perf_counter() - t)
        return min(times), got

    fw_t, fw = best(lambda: [e.url or "" for e in find_article_links(body, url)])
    nv_t, nv = best(lambda: naive_links(body, url))
    nv_c = {canonical_url(u) for u in nv}

    def quality(found: set[str | None]) -> tuple[float, float]:
        hit = len(found & truth)
        return hit / max(len(found), 1), hit / len(truth)

    return {
        "page_kb": len(body) / 1024,
        "links_on_page": body.count(b"<a "),
        "feedwatch": {"seconds": fw_t, "found": len(fw), "quality": quality(set(fw))},
        "naive": {"seconds": nv_t, "found": len(nv), "quality": quality(nv_c)},
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--urls", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("NAME", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.repeat)
        return

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "news.xml"
        packed = Path(tmp) / "news.xml.gz"
        body = make_sitemap(args.urls)
        plain.write_bytes(body)
        packed.write_bytes(gzip.compress(body, 6))
        print(
            f"sitemap: {args.urls} URLs, {len(body) / 1e6:.1f} MB "
            f"({packed.stat().st_size / 1e6:.1f} MB gzip); best of {args.repeat}, one process each"
        )
        print()
        print("| body | parser | seconds | URLs/s | peak extra RSS MB | items |")
        print("| --- | --- | --- | --- | --- | --- |")
        results: dict[tuple[str, str], dict[str, Any]] = {}
        for label, path in (("plain", plain), ("gzip", packed)):
            for name in CONTENDERS:
                r = run_child(name, path, args.repeat)
                results[(label, name)] = r
                print(
                    f"| {label} | {name} | {r['seconds']:.3f} | {r['items'] / r['seconds']:,.0f} "
                    f"| {r['peak_extra_mb']:.1f} | {r['items']} |"
                )
        print()
        ok = True
        for label in ("plain", "gzip"):
            fw = results[(label, "feedwatch")]
            for name in ("naive ElementTree", "naive lxml tree"):
                nv = results[(label, name)]
                same = nv["digest"] == fw["digest"] and nv["items"] == fw["items"]
                ok = ok and same
                print(
                    f"- {label}, vs {name}: time {nv['seconds'] / fw['seconds']:.2f}x, "
                    f"peak memory {nv['peak_extra_mb'] / max(fw['peak_extra_mb'], 0.1):.1f}x "
                    f"(naive / feedwatch); same items: {'yes' if same else 'NO'}"
                )
    print()
    page = bench_page()
    fw, nv = page["feedwatch"], page["naive"]
    print(
        f"section page: {page['page_kb']:.0f} KB, {page['links_on_page']} links, "
        "200 articles; best of 20 runs"
    )
    print()
    print("| finder | ms | links returned | precision | recall |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in (("feedwatch find_article_links", fw), ("naive lxml all links", nv)):
        p, rc = r["quality"]
        print(f"| {name} | {r['seconds'] * 1000:.1f} | {r['found']} | {p:.2f} | {rc:.2f} |")
    print()
    print(
        f"- time: feedwatch takes {fw['seconds'] / nv['seconds']:.1f}x the naive all-links pass "
        f"({(fw['seconds'] - nv['seconds']) * 1000:.1f} ms more per poll of the page) and returns "
        f"{fw['found']} links instead of {nv['found']}"
    )
    if not ok:
        sys.exit("the parsers disagree on the items")


if __name__ == "__main__":
    main()
