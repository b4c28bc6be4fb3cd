"""Structured logging: one event per line, key=value text or JSON, with secrets redacted."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable

_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Any of these strings is replaced by *** wherever it would be logged."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    for s in sorted(_secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "***")
    return text


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        msg = redact(record.getMessage())
        ts = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z"
        )
        if (
            record.exc_info
            and record.levelno >= logging.ERROR
            and logging.getLogger().level <= logging.DEBUG
        ):
            msg += "\n" + redact(self.formatException(record.exc_info))
        if self.as_json:
            return json.dumps(
                {"ts": ts, "level": record.levelname.lower(), "logger": record.name, "msg": msg},
                ensure_ascii=False,
            )
        return f"{ts} level={record.levelname.lower()} logger={record.name} {msg}"


def setup_logging(level: str = "info", as_json: bool = False, stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(_Formatter(as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (
        "apscheduler",
        "trafilatura",
        "htmldate",
        "courlan",
        "charset_normalizer",
        "aiosqlite",
        "asyncio",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
