"""Looking at a database file without changing it: what `feedwatch check` reports."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from storage.sqlite.migrate import LATEST_VERSION


def inspect_database(path: Path) -> list[str]:
    """What would stop a daemon from opening ``path``; creates and changes nothing."""
    if str(path) == ":memory:":
        return []
    if path.is_dir():
        return [f"{path} is a directory, not a database file"]
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return [f"cannot create the database {path}: {parent} is not writable"]
        return []
    problems = []
    if not os.access(path, os.R_OK | os.W_OK):
        problems.append(f"the database {path} is not readable and writable by this user")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        problems.append(
            f"the folder {path.parent} is not writable (SQLite writes its journal there)"
        )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [*problems, f"{path} is not a feedwatch database ({exc})"]
    if version > LATEST_VERSION:
        problems.append(
            f"the database {path} has schema version {version}, newer than this feedwatch knows "
            f"({LATEST_VERSION}): upgrade feedwatch"
        )
    return problems
