"""Times as people read them ("3 min ago", "in 1.5 h"), for the CLI and the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime


def ago(dt: datetime | None, now: datetime | None = None, *, compact: bool = False) -> str:
    """``12s ago``, ``in 5 min``, ``2.5 h ago``, ``3.0 d ago`` (``compact``: ``5m``, ``2.5h``)."""
    if dt is None:
        return "never"
    now = now or datetime.now(UTC)
    secs = (now - dt).total_seconds()
    future = secs < 0
    secs = abs(secs)
    gap = "" if compact else " "
    if secs < 90:
        s = f"{secs:.0f}s"
    elif secs < 5400:
        s = f"{secs / 60:.0f}{gap}{'m' if compact else 'min'}"
    elif secs < 172800:
        s = f"{secs / 3600:.1f}{gap}h"
    else:
        s = f"{secs / 86400:.1f}{gap}d"
    return f"in {s}" if future else f"{s} ago"
