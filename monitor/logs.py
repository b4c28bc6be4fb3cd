"""Structured logging: one event per line, as readable ``key=value`` text or as one JSON object.

Code logs events with fields, not formatted strings::

    log = get_logger(__name__)
    log.warning("feed failed", feed=name, url=url, error=str(exc))

Text: ``2026-11-30T08:00:00.000Z warning feed failed feed="BBC World" url=https://... error="..."``
JSON: ``{"ts": "...", "level": "warning", "event": "feed failed", "feed": "BBC World", ...}``

Records from other libraries (and from ``storage/``, which does not import ``monitor``) carry a
plain message; their ``key=value`` pairs are read back out of it, so every JSON line still has
its fields as keys. Every value registered as a secret is replaced by ``***`` in both forms.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

_secrets: set[str] = set()
_context: dict[str, Any] = {}  # fields added to every JSON line (the daemon's identity)
_RESERVED = frozenset({"ts", "level", "event", "logger"})
_HANDLER_NAME = "feedwatch"
# `key=value` in a plain message: a quoted Python repr or a run of non-space characters.
_PAIR_RE = re.compile(r"""(?<![\w.])([A-Za-z_][\w.]*)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S*)""")
_BARE_RE = re.compile(r"^[\w.:/@+\-%,()\[\]#?&*~]+$")


def register_secrets(values: Iterable[str]) -> None:
    """Any of these strings is replaced by *** wherever it would be logged or printed."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    for s in sorted(_secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "***")
    return text


def set_context(**fields: Any) -> None:
    """Fields every JSON line carries from now on (``daemon=host:pid:token``)."""
    _context.update(fields)


class EventLogger:
    """A logger whose calls name an event and its fields: ``log.info("feed polled", new=3)``."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def _log(self, level: int, event: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, event, extra={"fields": fields}, exc_info=exc_info, stacklevel=3)

    def debug(self, event: str, /, **fields: Any) -> None:
        self._log(logging.DEBUG, event, False, fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self._log(logging.INFO, event, False, fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self._log(logging.WARNING, event, False, fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self._log(logging.ERROR, event, False, fields)

    def exception(self, event: str, /, **fields: Any) -> None:
        """An error with the traceback (shown at debug level only)."""
        self._log(logging.ERROR, event, True, fields)

    def enabled(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)


def get_logger(name: str) -> EventLogger:
    return EventLogger(name)


def _value(raw: str) -> Any:
    """A value read back from a plain message: a repr is unquoted, a number becomes a number."""
    if raw[:1] in ("'", '"'):
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
    for cast in (int, float):
        try:
            value = cast(raw)
        except ValueError:
            continue
        return value if not (isinstance(value, float) and not math.isfinite(value)) else raw
    return raw


def parse_message(message: str) -> tuple[str, dict[str, Any]]:
    """``"feed failed feed='X' errors=3"`` -> ``("feed failed", {"feed": "X", "errors": 3})``."""
    first = _PAIR_RE.search(message)
    if first is None:
        return message.strip(), {}
    event = message[: first.start()].strip()
    fields = {m.group(1): _value(m.group(2)) for m in _PAIR_RE.finditer(message, first.start())}
    return event, fields


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text and _BARE_RE.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return str(value)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        if fields is not None:
            event = str(record.msg)
        else:
            event, fields = parse_message(record.getMessage())
        event = redact(event)
        ts = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z"
        )
        level = record.levelname.lower()
        trace = None
        if record.exc_info and logging.getLogger().level <= logging.DEBUG:
            trace = redact(self.formatException(record.exc_info))
        if self.as_json:
            out: dict[str, Any] = {"ts": ts, "level": level, "event": event}
            for key, value in {**_context, **fields}.items():
                out[f"field_{key}" if key in _RESERVED else key] = _redacted(_json_value(value))
            out["logger"] = record.name
            if trace:
                out["traceback"] = trace
            return json.dumps(out, ensure_ascii=False)
        parts = [ts, level, event]
        parts += [f"{k}={_text_value(_redacted(_json_value(v)))}" for k, v in fields.items()]
        line = " ".join(parts)
        return line + ("\n" + trace if trace else "")


def setup_logging(
    level: str = "info", as_json: bool = False, stream: IO[str] | None = None
) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter(as_json))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace our own handler (a second call, e.g. in-process CLI tests) and leave any other
    # (a test runner's capture) in place.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level.upper())
    for noisy in (
        "apscheduler",
        "trafilatura",
        "htmldate",
        "courlan",
        "charset_normalizer",
        "aiosqlite",
        "asyncio",
        "aiohttp.access",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
