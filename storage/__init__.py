"""Persistent state behind one interface; ``open_storage`` picks the backend from the URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from storage.base import DaemonInfo, Role, Storage, StorageError

__all__ = [
    "DaemonInfo",
    "Role",
    "Storage",
    "StorageError",
    "is_postgres_url",
    "mask_url",
    "open_storage",
    "sqlite_path_from_url",
]

_PG_SCHEMES = ("postgresql", "postgres")


def _scheme(url: str) -> str:
    scheme, sep, _ = url.strip().partition("://")
    return scheme.lower() if sep else ""


def is_postgres_url(url: str) -> bool:
    """``postgresql://``, ``postgres://`` or ``postgresql+driver://``."""
    scheme = _scheme(url)
    return scheme in _PG_SCHEMES or scheme.startswith("postgresql+")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``, fit for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable storage url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def sqlite_path_from_url(url: str) -> Path:
    """``data/x.db``, ``sqlite:///data/x.db`` (relative) or ``sqlite:////abs/x.db`` -> a path.

    Raises ``StorageError`` for any scheme but ``sqlite`` (PostgreSQL has no path).
    """
    text = url.strip()
    if not text:
        raise StorageError("storage url is empty")
    scheme, sep, rest = text.partition("://")
    if not sep:
        return Path(text)
    scheme = scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative.db -> "relative.db"; sqlite:////abs.db -> "/abs.db"
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise StorageError("storage url sqlite:// names no database file")
        return Path(path)
    if is_postgres_url(text):
        raise StorageError("a PostgreSQL storage url names no SQLite file")
    # Only the scheme is echoed: the rest may hold a password.
    raise StorageError(
        f"unsupported storage url scheme {scheme!r} (use a path, sqlite:///... or postgresql://...)"
    )


def open_storage(url: str, *, open_timeout: float | None = None) -> Storage:
    """Build (not yet open) the storage for ``url``; call ``await storage.open(role)`` next.

    ``open_timeout``: how long ``open`` keeps retrying an unreachable PostgreSQL server
    (default 60 s; a one-shot command may want less). SQLite never waits to open.
    """
    if is_postgres_url(url):
        from storage.postgres import PostgresStorage

        if open_timeout is None:
            return PostgresStorage(url)
        return PostgresStorage(url, open_timeout=open_timeout)
    from storage.sqlite import SQLiteStorage

    return SQLiteStorage(sqlite_path_from_url(url))


async def check_location(url: str, timeout: float = 5.0) -> list[str]:
    """Problems that would stop a daemon from using the database at ``url``, found without
    creating or changing anything (``feedwatch check`` runs this): an unwritable file or folder,
    a file that is not a database, a server that does not answer, a schema newer than this
    version knows. Empty when all is well."""
    try:
        storage = open_storage(url, open_timeout=timeout)
    except StorageError as exc:
        return [str(exc)]
    return await storage.inspect()


def database_exists(url: str) -> bool:
    """Whether there is a database at ``url`` already (read-only commands never create one)."""
    try:
        path = sqlite_path_from_url(url)
    except StorageError:
        return True  # a server database: opening it will say whether it is there
    return str(path) == ":memory:" or path.exists()
