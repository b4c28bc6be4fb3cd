"""Value types of the config, shared by the settings and by each channel's own config model.

Durations (``90s``, ``15m``), sizes (``5MB``), intervals (``auto``), digest periods, http(s) URLs
and the frozen, strict base model. Kept apart from ``monitor.settings`` so a channel module can
declare its config model without importing the whole config (and without an import cycle).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict

# --------------------------------------------------------------------------- units

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1024,
    "mb": 1024**2,
    "gb": 1024**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$", re.IGNORECASE)


def parse_duration(value: Any) -> float:
    """``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 15m, 2h or 1d")
    if isinstance(value, int | float):
        return _bounded_seconds(float(value))
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 90s, 15m, 2h or 1d")
    text = value.strip().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _bounded_seconds(float(text))
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (use 90s, 15m, 2h, 1d)")
    return _bounded_seconds(total)


MAX_DURATION = 10 * 365 * 86400.0  # ten years: longer is a typo, and overflows date arithmetic


def _bounded_seconds(seconds: float) -> float:
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError("a duration cannot be longer than 10 years")
    return seconds


def parse_size(value: Any) -> int:
    """``512KB``, ``5MB`` (binary multiples) or a number of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512KB or 5MB")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("a size must be positive")
        return value
    if isinstance(value, str) and (m := _SIZE_RE.match(value)):
        n = float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()]
        if n <= 0:
            raise ValueError("a size must be positive")
        if n > 2**40:
            raise ValueError("a size cannot be more than 1 TB")
        return int(n)
    raise ValueError(f"{value!r} is not a size (use 512KB, 5MB)")


def format_duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


def _interval(value: Any) -> float | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    seconds = parse_duration(value)
    if seconds < 1:
        raise ValueError("an interval must be at least 1s")
    return seconds


Interval = Annotated[float | Literal["auto"], BeforeValidator(_interval)]


@dataclass(frozen=True)
class DigestSpec:
    """``digest: 1h`` (every hour) or ``digest: daily at 08:00 Europe/Lisbon``."""

    every: float | None = None  # seconds, for a fixed period
    at: tuple[int, int] | None = None  # (hour, minute), for a daily digest
    tz: str = "UTC"

    def __str__(self) -> str:
        if self.every is not None:
            return f"every {format_duration(self.every)}"
        assert self.at is not None
        return f"daily at {self.at[0]:02d}:{self.at[1]:02d} {self.tz}"


_DAILY_RE = re.compile(r"^daily\s+at\s+(\d{1,2}):(\d{2})(?:\s+(\S+))?$", re.IGNORECASE)


def _digest(value: Any) -> DigestSpec | None:
    if value is None or isinstance(value, DigestSpec):
        return value
    if isinstance(value, str) and (m := _DAILY_RE.match(value.strip())):
        hour, minute, tz = int(m.group(1)), int(m.group(2)), m.group(3) or "UTC"
        if hour > 23 or minute > 59:
            raise ValueError(f"{value!r}: no such time of day")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {tz!r} (use an IANA name such as Europe/Lisbon)"
            ) from None
        return DigestSpec(at=(hour, minute), tz=tz)
    seconds = parse_duration(value)
    if seconds < 60:
        raise ValueError("a digest period must be at least 1m")
    return DigestSpec(every=seconds)


Digest = Annotated[DigestSpec | None, BeforeValidator(_digest)]


def check_http_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a URL")
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{mask_url(value)!r} is not an http(s) URL")
    return value


HttpUrl = Annotated[str, BeforeValidator(check_http_url)]


def hide_userinfo(url: str) -> str:
    """A URL with any user:password@ part replaced by ***@ (the rest stays readable)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if not (parts.username or parts.password):
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def mask_url(url: str) -> str:
    """A URL with credentials, path tokens and query values hidden: safe to print."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = "***@" + host
    path = parts.path
    segments = path.split("/")
    if len(segments) > 2:  # keep the first segment, hide tokens such as /services/T0/B0/xyz
        path = "/".join(segments[:2]) + "/***"
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, host, path, query, ""))


class Model(BaseModel):
    """Strict and frozen: unknown keys are errors, a loaded config never changes."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64); raw bytes otherwise."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("secret: the part after 'whsec_' must be base64") from None
    if not secret:
        raise ValueError("secret: cannot be empty")
    return secret.encode()
