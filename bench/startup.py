"""Start-up cost of each command, against `python -c pass` and against an older feedwatch.

Every command runs as a user runs it (a fresh `python -m monitor ...` process) on a one-feed
config whose feed is served on 127.0.0.1; the median wall time of several runs is reported.

    python bench/startup.py                       # this checkout only
    python bench/startup.py --baseline bc149fe    # also a git commit (checked out to a temp dir)

"Fixed cost" is the command's time minus `python -c pass`: imports, config, matcher, storage.
`run --once` also polls the feed (and with extraction on, extracts its one page): that work is
reported separately from the fixed cost, since it is the job itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>Bench</title>
<item><title>Evacuation order for the valley</title><link>http://127.0.0.1:{port}/story.html</link>
<description>Officials issued an evacuation order.</description></item></channel></rss>"""
PAGE = (
    "<html><body><article><h1>Evacuation order</h1>"
    + "<p>Officials issued an evacuation order for the valley as the fire spread.</p>" * 20
    + "</article></body></html>"
)


def config(tmp: Path, port: int, extract: bool, places: bool) -> Path:
    path = tmp / f"feedwatch-{extract}-{places}.yaml"
    watch = '{name: w, keywords: ["evacuation order"], channels: [out]}'
    if places:
        watch = '{name: w, keywords: ["evacuation order"], places: [Lisbon], channels: [out]}'
    path.write_text(
        textwrap.dedent(
            f"""
            storage: {{url: {tmp / f"fw-{extract}-{places}.db"}}}
            fetch: {{allow_private_networks: true}}
            defaults: {{extract: {str(extract).lower()}}}
            feeds: [{{url: "http://127.0.0.1:{port}/feed.xml", name: Bench}}]
            channels: {{out: {{type: webhook, url: "http://127.0.0.1:{port}/hook"}}}}
            watchlists: [{watch}]
            delivery: {{drain_seconds: 0}}
            """
        )
    )
    return path


@contextlib.contextmanager
def serve(tmp: Path) -> Iterator[int]:
    """A plain static server for the feed and its page (POSTs to /hook get 501: fine)."""
    site = tmp / "site"
    site.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port NNNN ..."
    port = int(line.split(" port ")[1].split()[0])
    (site / "feed.xml").write_text(FEED.format(port=port))
    (site / "story.html").write_text(PAGE)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


def timed(cmd: list[str], cwd: Path, env: dict[str, str], runs: int) -> float:
    """Median wall time of ``runs`` runs, after one untimed run (it writes the bytecode cache,
    as any installed program has one, and creates the database)."""
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=120)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=120, text=True)
        times.append(time.perf_counter() - t0)
        if done.returncode not in (0, 3):  # 3: the webhook got 501 from the static server
            err = done.stderr.strip().splitlines()
            raise SystemExit(
                f"{' '.join(cmd[1:])}: exit {done.returncode}: {err[-1] if err else ''}"
            )
    return statistics.median(times)


def user_env() -> dict[str, str]:
    """The environment of a user's shell: Python writes and uses its bytecode cache (some CI
    images set PYTHONDONTWRITEBYTECODE, which makes every start compile every module)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(src: Path, tmp: Path, port: int, runs: int, label: str) -> dict[str, float]:
    env = {**user_env(), "PYTHONPATH": str(src), "NO_COLOR": "1"}
    py = [sys.executable]
    out: dict[str, float] = {}
    kw = config(tmp, port, extract=False, places=False)
    places = config(tmp, port, extract=False, places=True)
    ext = config(tmp, port, extract=True, places=False)
    cases = {
        "--help": ["-m", "monitor", "--help"],
        "check (keywords)": ["-m", "monitor", "check", "-c", str(kw)],
        "check (a place)": ["-m", "monitor", "check", "-c", str(places)],
        "status": ["-m", "monitor", "status", "-c", str(kw)],
        "run --once, 1 feed, no extraction": ["-m", "monitor", "run", "--once", "-c", str(kw)],
        "run --once, 1 feed, extraction": ["-m", "monitor", "run", "--once", "-c", str(ext)],
    }
    for name, args in cases.items():
        out[name] = timed(py + args, src, env, runs)
        print(f"  {label:>10}  {name:<36} {out[name]:6.3f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="a git commit to compare with (e.g. the previous release)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fw-startup-"))
    try:
        base = timed([sys.executable, "-c", "pass"], ROOT, user_env(), args.runs)
        print(f"python -c pass: {base:.3f} s (median of {args.runs})")
        with serve(tmp) as port:
            (tmp / "now").mkdir()
            now = measure(ROOT, tmp / "now", port, args.runs, "this")
            old: dict[str, float] = {}
            if args.baseline:
                src = tmp / "baseline"
                subprocess.run(
                    ["git", "worktree", "add", "--detach", str(src), args.baseline],
                    cwd=ROOT, check=True, capture_output=True,
                )  # fmt: skip
                try:
                    (tmp / "old").mkdir()
                    old = measure(src, tmp / "old", port, args.runs, args.baseline[:10])
                finally:
                    subprocess.run(
                        ["git", "worktree", "remove", "--force", str(src)], cwd=ROOT,
                        capture_output=True,
                    )  # fmt: skip
        print()
        print("| command | this checkout | fixed cost (minus python -c pass) |"
              + (f" {args.baseline[:10]} | ratio |" if old else ""))  # fmt: skip
        print("| --- | --- | --- |" + (" --- | --- |" if old else ""))
        for name, t in now.items():
            row = f"| `{name}` | {t:.2f} s | {t - base:.2f} s |"
            if old:
                row += f" {old[name]:.2f} s | {old[name] / t:.1f}x |"
            print(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
