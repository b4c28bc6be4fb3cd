"""Fixtures shared by several test files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.sqlite import SQLiteStorage


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    """A real SQLite database in a temporary folder, opened (migrated) and closed after."""
    storage = SQLiteStorage(tmp_path / "fw.db")
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()
