"""Snippets: about 200 characters of the original text around a match, cut between words."""

from __future__ import annotations

ELLIPSIS = "…"


def make_snippet(text: str, start: int, end: int, width: int = 200) -> str:
    """``text[start:end]`` with context on both sides, whitespace collapsed, ``…`` where cut.

    The window is centred on the match (shifted when it hits either end of the text), then
    shrunk to whole words; a match longer than ``width`` is returned whole.
    """
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
        cut = _next_space(text, left, start)
        left = cut if cut is not None else left
    if right < n and not text[right].isspace():
        cut = _prev_space(text, right, end)
        right = cut if cut is not None else right
    body = " ".join(text[left:right].split())
    return f"{ELLIPSIS if left > 0 else ''}{body}{ELLIPSIS if right < n else ''}"


def _next_space(text: str, pos: int, limit: int) -> int | None:
    """First position after a whitespace char in [pos, limit], or None (CJK: no spaces)."""
    for i in range(pos, limit):
        if text[i].isspace():
            return i + 1
    return None


def _prev_space(text: str, pos: int, limit: int) -> int | None:
    """Last whitespace position in [limit, pos), or None."""
    for i in range(pos - 1, limit - 1, -1):
        if text[i].isspace():
            return i
    return None
