"""Migration files, shared by both backends: ``NNNN_name.sql`` in a folder, numbered 1, 2, 3..."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from storage.base import StorageError

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(folder_name: str = "migrations") -> list[Migration]:
    """The bundled migrations in order; their versions must run 1, 2, 3... without gaps."""
    folder = resources.files("storage").joinpath(*folder_name.split("/"))
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise StorageError(f"migration {migration.name}: expected version {expected:04d}")
    return found
