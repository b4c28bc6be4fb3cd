"""Keyword terms (also used for ``require`` and ``exclude``): parsing and automaton keys.

A term is matched as whole words over normalised text. A trailing ``*`` lets the last word
run on (``wildfire*`` matches wildfire, wildfires, wildfire's; in ``wildfire-hit`` it matches
``wildfire``: punctuation ends a word). A ``*`` anywhere else is an error. A term with
accents only matches text with the same accents; an unaccented term matches both.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.match.normalize import accent_key, has_accents, normalize, unspaced


@dataclass(frozen=True, slots=True)
class Term:
    text: str  # as configured
    key: str  # automaton key: normalised, with a leading/trailing space for word boundaries
    prefix: bool  # trailing * : the last word may continue
    accents: str | None  # accent-keeping form when the term has accents, else None


def automaton_key(words: str, prefix: bool) -> str:
    """Pad normalised ``words`` with spaces where a word boundary is required."""
    lead = "" if unspaced(words[0]) else " "
    trail = "" if prefix or unspaced(words[-1]) else " "
    return f"{lead}{words}{trail}"


def parse_term(raw: str) -> Term:
    """``wildfire*`` -> a prefix term; raises ValueError for an unusable term."""
    text = raw.strip()
    prefix = text.endswith("*")
    body = text.rstrip("*").strip() if prefix else text
    if "*" in body:
        raise ValueError(f"{raw!r}: '*' is only allowed at the end of a term")
    words = normalize(body).strip()
    if not words:
        raise ValueError(f"{raw!r} has no letters or digits to match")
    return Term(
        text=text,
        key=automaton_key(words, prefix),
        prefix=prefix,
        accents=accent_key(body) if has_accents(body) else None,
    )
