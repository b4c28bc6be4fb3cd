"""Console channel: alerts printed readably to stdout (what ``feedwatch demo`` shows).

Article text is reduced to printable single lines first, so a title holding ANSI escapes or
CR/LF cannot repaint the terminal or fake extra alerts. Matched text is shown in bold (and the
watchlist in colour) only when stdout is a terminal and ``NO_COLOR`` is unset; otherwise it is
marked with ``[...]`` so it still stands out in a log file.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal, TextIO

from monitor.deliver.base import SendResult, delivered, retry
from monitor.deliver.channel import ChannelConfig, ChannelType, SenderContext
from monitor.deliver.render import AlertView, group_by_watchlist, plural, split_highlight, view

_BOLD, _DIM, _CYAN, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[36m", "\x1b[0m"


class ConsoleChannel(ChannelConfig):
    type: Literal["console"]


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def bold(self, s: str) -> str:
        return f"{_BOLD}{s}{_RESET}" if self.color else s

    def dim(self, s: str) -> str:
        return f"{_DIM}{s}{_RESET}" if self.color else s

    def accent(self, s: str) -> str:
        return f"{_CYAN}{_BOLD}{s}{_RESET}" if self.color else s

    def hit(self, s: str) -> str:
        return f"{_BOLD}{s}{_RESET}" if self.color else f"[{s}]"


def _alert_lines(v: AlertView, st: _Style, *, with_watchlist: bool = True) -> list[str]:
    head = f"{st.accent(v.watchlist)}  " if with_watchlist else ""
    lines = [f"● {head}{st.bold(v.title)}"]
    meta = " · ".join(b for b in (v.feed, v.published) if b)
    if meta:
        lines.append(f"  {st.dim(meta)}")
    if v.raw_url:
        lines.append(f"  {v.raw_url}")
    for m in v.matches[:10]:
        found = f" → {m.text}" if m.text and m.text != m.term else ""
        lines.append(f"  {m.kind} {m.term!r}{found}")
        if m.snippet:
            marked = "".join(
                st.hit(p) if hit else p for p, hit in split_highlight(m.snippet, m.text)
            )
            lines.append(f"      “{marked}”")
    if len(v.matches) > 10:
        lines.append(f"  …and {len(v.matches) - 10} more matches")
    return lines


def format_alerts(alerts: list[dict[str, Any]], *, color: bool = False) -> str:
    """The text printed for one alert, or a digest grouped by watchlist; ends with a newline."""
    st = _Style(color)
    views = [view(a) for a in alerts]
    if len(views) == 1:
        return "\n".join(_alert_lines(views[0], st)) + "\n\n"
    out = [st.bold(f"Digest: {plural(len(views), 'alert')}"), ""]
    for watchlist, items in group_by_watchlist(views).items():
        out.append(f"{st.accent(watchlist)} ({plural(len(items), 'alert')})")
        for v in items:
            out += _alert_lines(v, st, with_watchlist=False)
        out.append("")
    return "\n".join(out) + "\n"


def _wants_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class ConsoleSender:
    """Writes alerts to ``stream`` (stdout, looked up at send time, by default)."""

    def __init__(self, name: str = "console", stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    async def send(self, alerts: list[dict[str, Any]]) -> SendResult:
        stream = self._stream or sys.stdout
        text = format_alerts(alerts, color=_wants_color(stream))
        encoding = getattr(stream, "encoding", None)
        if encoding:  # an ASCII terminal gets "?" for "●", never an error that retries forever
            try:
                text = text.encode(encoding, "replace").decode(encoding)
            except LookupError:
                pass
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError) as exc:  # closed or broken stdout
            return retry(f"cannot write to the console: {exc}")
        return delivered()


def _sender(name: str, ch: ConsoleChannel, ctx: SenderContext) -> ConsoleSender:
    return ConsoleSender(name)


CHANNEL = ChannelType("console", ConsoleChannel, _sender, lambda ch: "console (standard output)")
