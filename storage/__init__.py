"""Persistent state behind one interface; ``open_storage`` picks the backend from the URL."""

from __future__ import annotations

from pathlib import Path

from storage.base import Storage, StorageError

__all__ = ["Storage", "StorageError", "open_storage", "sqlite_path_from_url"]


def sqlite_path_from_url(url: str) -> Path:
    """``data/x.db``, ``sqlite:///data/x.db`` (relative) or ``sqlite:////abs/x.db`` -> a path.

    Raises ``StorageError`` for PostgreSQL (not available yet) and for any other scheme.
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
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        raise StorageError("PostgreSQL support is not available yet")
    # Only the scheme is echoed: the rest may hold a password.
    raise StorageError(f"unsupported storage url scheme {scheme!r} (use a path or sqlite:///...)")


def open_storage(url: str) -> Storage:
    """Build (not yet open) the storage for ``url``; call ``await storage.open()`` next."""
    from storage.sqlite import SQLiteStorage

    return SQLiteStorage(sqlite_path_from_url(url))


def check_location(url: str) -> list[str]:
    """Problems that would stop a daemon from using the database at ``url``, found without
    creating anything (``feedwatch check`` runs this): an unwritable file or folder, a file
    that is not a database, a schema newer than this version knows. Empty when all is well."""
    from storage.sqlite import inspect_database

    try:
        path = sqlite_path_from_url(url)
    except StorageError as exc:
        return [str(exc)]
    return inspect_database(path)


def database_exists(url: str) -> bool:
    """Whether there is a database at ``url`` already (read-only commands never create one)."""
    try:
        path = sqlite_path_from_url(url)
    except StorageError:
        return True  # a server database: opening it will say whether it is there
    return str(path) == ":memory:" or path.exists()
