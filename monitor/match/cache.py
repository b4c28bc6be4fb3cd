"""Where the matcher keeps data it derives once per machine (Unicode tables, the gazetteer).

Deriving them costs seconds; every command that builds a matcher would pay that at start. So
each is built on first use from installed packages, written to a cache directory under a name
that says what it was built from (a data or Unicode version change gives a new file), and
opened from there afterwards. Writers go through a temporary file and an atomic rename, so
concurrent processes (the daemon and `feedwatch try`, parallel tests) never see half a file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "FEEDWATCH_CACHE_DIR"


def cache_dir() -> Path:
    """``$FEEDWATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/feedwatch``, else ``~/.cache/feedwatch``."""
    explicit = os.environ.get(ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "feedwatch"


def _fallback_dir() -> Path:
    """For a cache directory that cannot be written (a read-only home)."""
    return Path(tempfile.gettempdir()) / f"feedwatch-cache-{os.getuid()}"


def _writable(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(d, os.W_OK)


def cached_file(name: str, build: Callable[[Path], None], what: str) -> Path:
    """The path of cache file ``name``, building it with ``build(tmp_path)`` when missing.

    A file already in the cache directory is used even when the directory is read-only (an
    image can ship it prebuilt). ``build`` writes a complete file at the path it is given;
    it is renamed into place only once complete. Two processes building at once both
    succeed (the last rename wins; both files are identical).
    """
    for d in (cache_dir(), _fallback_dir()):
        if (d / name).exists():
            return d / name
    d = cache_dir() if _writable(cache_dir()) else _fallback_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    log.warning("building the %s once for this machine: %s", what, path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        tmp_path.unlink()  # the builder creates it (SQLite wants a fresh file)
        build(tmp_path)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path
