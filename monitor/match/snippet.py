"""Snippets: about 200 characters of the original text around a match, cut between words."""

from __future__ import annotations

import re

ELLIPSIS = "…"


def make_snippet(text: str, start: int, end: int, width: int = 200) -> str:
    """``text[start:end]`` with context on both sides, whitespace collapsed, ``…`` where cut.

    The window is centred on the match (shifted when it hits either end of the text), then
    shrunk to whole words; a match longer than ``width`` is returned whole.
    """
    left, right = _window(text, start, end, width)
    n = len(text)
    body = text[left:right]
    if not (body.isprintable() and "  " not in body and body[:1] != " " and body[-1:] != " "):
        body = " ".join(body.split())  # (every whitespace but " " is unprintable)
    if left:
        return f"{ELLIPSIS}{body}{ELLIPSIS}" if right < n else ELLIPSIS + body
    return body + ELLIPSIS if right < n else body


_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use marks: never whitespace, never in news text


def marked_snippet(text: str, start: int, end: int, width: int = 200) -> tuple[str, int, int]:
    """The same snippet as :func:`make_snippet`, with where ``text[start:end]`` sits in it.

    For highlighting (``feedwatch try``): the first occurrence of the found text in the
    snippet is not always the one that matched.
    """
    left, right = _window(text, start, end, width)
    seg = text[left:start] + _OPEN + text[start:end] + _CLOSE + text[end:right]
    body = " ".join(seg.split())
    lead = ELLIPSIS if left > 0 else ""
    a = body.index(_OPEN)
    b = body.index(_CLOSE) - 1
    body = body.replace(_OPEN, "").replace(_CLOSE, "")
    trail = ELLIPSIS if right < len(text) else ""
    return f"{lead}{body}{trail}", a + len(lead), b + len(lead)


def _window(text: str, start: int, end: int, width: int) -> tuple[int, int]:
    """[left, right) of the snippet in ``text``: centred on the match, cut between words."""
    n = len(text)
    budget = max(0, width - (end - start))
    left = start - budget // 2
    right = end + (budget - budget // 2)
    if left < 0:
        right = min(n, right - left)
        left = 0
    if right > n:
        left = max(0, left - (right - n))
        right = n
    if left > 0 and not text[left - 1].isspace():
        # the first whitespace in [left, start): usually a plain space with only printable
        # characters before it (every other whitespace character is unprintable)
        i = text.find(" ", left, start)
        if i >= 0 and text[left:i].isprintable():
            left = i + 1
        else:
            cut = _next_space(text, left, start)
            left = cut if cut is not None else left
    if right < n and not text[right].isspace():
        i = text.rfind(" ", end, right)
        if i >= 0 and text[i + 1 : right].isprintable():
            right = i
        else:
            cut = _prev_space(text, right, end)
            right = cut if cut is not None else right
    return left, right


_WS = re.compile(r"\s")  # \s is str.isspace() for str patterns
_LAST_WS = re.compile(r".*\s", re.S)


def _next_space(text: str, pos: int, limit: int) -> int | None:
    """First position after a whitespace char in [pos, limit), or None (CJK: no spaces)."""
    m = _WS.search(text, pos, limit)
    return m.end() if m else None


def _prev_space(text: str, pos: int, limit: int) -> int | None:
    """Last whitespace position in [limit, pos), or None."""
    m = _LAST_WS.match(text, limit, pos)
    return m.end() - 1 if m else None
