"""Python values to and from PostgreSQL: UTC times, and text without NUL characters.

PostgreSQL's text and jsonb cannot hold U+0000, which a hostile feed can put anywhere; it is
dropped on the way in (SQLite keeps it; nothing downstream needs it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def t(value: Any) -> datetime | None:
    """A ``timestamptz`` as an aware UTC datetime."""
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def j(value: Any) -> Any:
    """``jsonb`` arrives decoded already."""
    return value


def text(value: str | None) -> str | None:
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "")


def clean_json(value: Any) -> Any:
    """The same structure with every string's NUL characters dropped."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {clean_json(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def json_text(dumped: str, value: Any) -> str:
    """JSON text fit for jsonb: re-dumped without NULs only when it has an escaped one."""
    if "\\u0000" not in dumped:
        return dumped
    import json

    return json.dumps(clean_json(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
