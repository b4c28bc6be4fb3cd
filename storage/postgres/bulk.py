"""Whole-table export and import on PostgreSQL (``COPY``), for ``storage.copy``."""

from __future__ import annotations

import json
from typing import Any

from storage.base import TABLES, TableName
from storage.postgres.connection import PgBase
from storage.postgres.values import clean_json, t, text
from storage.rows import table_spec

_IDENTITY_TABLES = ("feeds", "articles")


class PgBulk(PgBase):
    async def count_rows(self, table: TableName) -> int:
        table_spec(table)
        rows = await self._fetch(f"SELECT COUNT(*) AS n FROM {table}", None)
        return int(rows[0]["n"])

    async def export_rows(
        self, table: TableName, after: tuple[Any, ...] | None, limit: int
    ) -> list[dict[str, Any]]:
        keys, columns = table_spec(table)
        names = ", ".join(name for name, _ in columns)
        order = ", ".join(keys)
        where = ""
        params: list[Any] = []
        if after is not None:
            where = f"WHERE ({order}) > ({', '.join(['%s'] * len(keys))})"
            params.extend(after)
        params.append(limit)
        rows = await self._fetch(
            f"SELECT {names} FROM {table} {where} ORDER BY {order} LIMIT %s", params
        )
        return [
            {name: t(row[name]) if kind == "time" else row[name] for name, kind in columns}
            for row in rows
        ]

    async def import_rows(self, table: TableName, rows: list[dict[str, Any]]) -> int:
        """``COPY ... FROM STDIN`` in one transaction, then the id sequence moves past them."""
        _keys, columns = table_spec(table)
        if not rows:
            return 0
        names = ", ".join(name for name, _ in columns)
        async with self._tx() as conn:
            self.round_trips += 1
            async with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    values: list[Any] = []
                    for name, kind in columns:
                        value = row.get(name)
                        if kind == "json" and value is not None:
                            value = json.dumps(clean_json(value), ensure_ascii=False)
                        elif kind == "text":
                            value = text(value)
                        values.append(value)
                    await copy.write_row(values)
            if table in _IDENTITY_TABLES:
                await self._run(
                    conn,
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"GREATEST((SELECT MAX(id) FROM {table}), 1))",
                    None,
                )
        return len(rows)

    async def clear_all(self) -> None:
        async with self._conn() as conn:
            await self._run(
                conn,
                f"TRUNCATE {', '.join(TABLES)}, feed_events, poll_hours RESTART IDENTITY",
                None,
            )
