"""SQLite's value formats: times as fixed-width UTC text, lists and JSON as text.

Times are stored as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so text order is time order, the file is
readable with the ``sqlite3`` shell, and values round-trip exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any


def to_db_time(value: datetime) -> str:
    """Fixed-width UTC text; naive datetimes are taken as UTC (the whole codebase uses UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    else:
        value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


def opt_time(value: datetime | None) -> str | None:
    return None if value is None else to_db_time(value)


def from_db_time(value: Any) -> datetime | None:
    """Parse stored text back into an aware UTC datetime."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def from_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def json_list(values: Iterable[Any]) -> str:
    """A list passed as one JSON parameter and unpacked by ``json_each``: no 10,000-item IN list."""
    return json.dumps(list(values), ensure_ascii=False)
