"""What the matcher derives once per machine: cached on disk, built lazily, never per import."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from monitor.match.cache import cached_file

ROOT = Path(__file__).resolve().parent.parent


def test_cached_file_builds_once_and_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDWATCH_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[Path] = []
    seen_partial: list[bool] = []

    def build(path: Path) -> None:
        calls.append(path)
        # while it is being written, the final name does not exist yet
        seen_partial.append((tmp_path / "cache" / "data.bin").exists())
        path.write_bytes(b"x" * 1000)

    first = cached_file("data.bin", build, "test data")
    assert first == tmp_path / "cache" / "data.bin"
    assert first.read_bytes() == b"x" * 1000
    assert seen_partial == [False] and calls[0] != first
    assert cached_file("data.bin", build, "test data") == first
    assert len(calls) == 1  # the second call only opens it
    assert not [p for p in first.parent.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_builders_both_get_a_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDWATCH_CACHE_DIR", str(tmp_path))
    both_started = threading.Barrier(2, timeout=10)

    def build(path: Path) -> None:
        both_started.wait()  # both threads are building before either renames
        path.write_text("complete")

    results: list[str] = []

    def worker() -> None:
        results.append(cached_file("shared.txt", build, "test").read_text())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert results == ["complete", "complete"]


def _run(code: str, cache: Path) -> str:
    env = {**os.environ, "FEEDWATCH_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_the_matcher_builds_nothing(tmp_path: Path) -> None:
    """Issue 10: no Unicode tables or gazetteer at import; a keyword-only matcher never
    opens the gazetteer (here: an empty cache stays without a gazetteer file)."""
    cache = tmp_path / "empty"
    assert _run("import monitor.match", cache) == ""
    assert not cache.exists() or not list(cache.iterdir())
    code = (
        "import sys; from monitor.match import Matcher, Document; "
        "from monitor.settings import Watchlist; "
        "m = Matcher.build([Watchlist(name='w', keywords=['flood*'], require=['river'])]); "
        "print(bool(m.match(Document('Floods', '', 'The river rose.'))), "
        "'monitor.match.gazetteer' in sys.modules, 'sqlite3' in sys.modules)"
    )
    assert _run(code, cache) == "True False False"
    assert [p.name.startswith("unicode-fold-") for p in cache.iterdir()] == [True]
