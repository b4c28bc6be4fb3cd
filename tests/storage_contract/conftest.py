"""The storage contract: every test here runs, unchanged, on SQLite and on PostgreSQL.

``store`` is an open storage of the backend under test; ``make_store`` opens more on the same
database (another process's connection, as far as the database can tell). Tests speak only
through the ``Storage`` interface: no SQL, no backend internals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from storage.base import Role, Storage
from storage.postgres import PostgresStorage
from storage.sqlite import SQLiteStorage

MakeStore = Callable[..., Awaitable[Storage]]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where the backend under test keeps this test's data: a file, or a fresh PG database."""
    if backend == "sqlite":
        return str(tmp_path / "fw.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def make_store(backend: str, database: str) -> AsyncIterator[MakeStore]:
    opened: list[Storage] = []

    async def make(role: Role = "command", **kwargs: Any) -> Storage:
        st: Storage
        if backend == "sqlite":
            st = SQLiteStorage(database, **kwargs)
        else:
            st = PostgresStorage(database, **kwargs)
        await st.open(role)
        opened.append(st)
        return st

    yield make
    for st in opened:
        await st.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Storage:
    return await make_store()
