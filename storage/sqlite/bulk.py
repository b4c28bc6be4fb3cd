"""Whole-table export and import on SQLite, for ``storage.copy``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from storage.base import TABLES, ColumnKind, TableName
from storage.rows import table_spec
from storage.sqlite.connection import SQLiteBase
from storage.sqlite.convert import from_db_time, json_list, to_db_time
from storage.sqlite.search import INDEX_IDS


def _load(kind: ColumnKind, value: Any) -> Any:
    if value is None:
        return None
    if kind == "time":
        return from_db_time(value)
    if kind == "json":
        return json.loads(value)
    return value


def _dump(kind: ColumnKind, value: Any) -> Any:
    if value is None:
        return None
    if kind == "time":
        assert isinstance(value, datetime)
        return to_db_time(value)
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return value


class SQLiteBulk(SQLiteBase):
    async def count_rows(self, table: TableName) -> int:
        table_spec(table)
        async with self._read() as db:
            rows = await db.execute_fetchall(f"SELECT COUNT(*) FROM {table}")
        return int(next(iter(rows))[0])

    async def export_rows(
        self, table: TableName, after: tuple[Any, ...] | None, limit: int
    ) -> list[dict[str, Any]]:
        keys, columns = table_spec(table)
        names = ", ".join(name for name, _ in columns)
        order = ", ".join(keys)
        where = ""
        params: list[Any] = []
        if after is not None:
            where = f"WHERE ({order}) > ({', '.join('?' * len(keys))})"
            params.extend(after)
        params.append(limit)
        async with self._read() as db:
            rows = await db.execute_fetchall(
                f"SELECT {names} FROM {table} {where} ORDER BY {order} LIMIT ?", params
            )
        return [{name: _load(kind, row[name]) for name, kind in columns} for row in rows]

    async def import_rows(self, table: TableName, rows: list[dict[str, Any]]) -> int:
        _keys, columns = table_spec(table)
        if not rows:
            return 0
        names = ", ".join(name for name, _ in columns)
        marks = ", ".join("?" * len(columns))
        async with self._write() as db:
            await db.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({marks})",
                [[_dump(kind, row.get(name)) for name, kind in columns] for row in rows],
            )
            if table == "articles" and self._search_index:
                await db.execute(INDEX_IDS, (json_list(row["id"] for row in rows),))
        return len(rows)

    async def clear_all(self) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM feed_events")
            await db.execute("DELETE FROM poll_hours")
            for table in reversed(list(TABLES)):
                await db.execute(f"DELETE FROM {table}")
